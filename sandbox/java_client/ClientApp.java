// A real java-driver 4.19 client application for the rig: QUORUM writes and reads over mTLS
// with PKCS#12 stores, authenticated by its certificate under MutualTlsAuthenticator.
//
//   java -cp classes:lib/* ClientApp --name N --keystore K.p12 --truststore T.p12
//        --password-file F --status S.json [--contact a,b,c] [--rate 20] [--argv JSON]
//
// Started through `python -m sandbox.client_app run-java ...`, which execs this JVM (same pid),
// so the Python control commands (health, pid, restart) work for it unchanged.
//
// Certificates: the driver's own `keystore-reload-interval` (1 s) swaps its key manager when the
// keystore file changes, so every new connection presents the new certificate. A reload never
// moves connections that are already open, so the app also watches the keystore's SHA-256 and,
// on a change, builds a new session and closes the old one after the switch: within a few
// seconds every connection is under the new identity (certdeploy's `watch` activation waits for
// that, then proves it from the server side). The truststore is never reloaded by the driver: a
// CA change needs a restart. The password is read from a 0600 file, never from argv or env.
import com.datastax.oss.driver.api.core.CqlSession;
import com.datastax.oss.driver.api.core.auth.AuthProvider;
import com.datastax.oss.driver.api.core.auth.Authenticator;
import com.datastax.oss.driver.api.core.auth.SyncAuthenticator;
import com.datastax.oss.driver.api.core.config.DefaultDriverOption;
import com.datastax.oss.driver.api.core.config.DriverConfigLoader;
import com.datastax.oss.driver.api.core.cql.PreparedStatement;
import com.datastax.oss.driver.api.core.metadata.EndPoint;
import java.io.FileInputStream;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class ClientApp {
  private final Map<String, String> args;
  private final char[] password;
  private volatile CqlSession session;
  private PreparedStatement insert, select;
  private long ok, failed, reloads, restarts;
  private String lastError, fingerprint, keystoreSha;
  private double lastOk;
  private volatile boolean stop;

  /** MutualTlsAuthenticator asks for authentication; the certificate is the credential. */
  static final class CertificateAuth implements AuthProvider {
    @Override
    public Authenticator newAuthenticator(EndPoint endPoint, String serverAuthenticator) {
      return new SyncAuthenticator() {
        @Override
        public ByteBuffer initialResponseSync() {
          return ByteBuffer.allocate(0);
        }

        @Override
        public ByteBuffer evaluateChallengeSync(ByteBuffer challenge) {
          return null;
        }

        @Override
        public void onAuthenticationSuccessSync(ByteBuffer token) {}
      };
    }

    @Override
    public void onMissingChallenge(EndPoint endPoint) {}

    @Override
    public void close() {}
  }

  ClientApp(Map<String, String> args) throws Exception {
    this.args = args;
    Path file = Path.of(args.get("password-file"));
    this.password = Files.readString(file, StandardCharsets.UTF_8).strip().toCharArray();
    carryOver();
  }

  /** The counters of the process this one replaces (a restart): failures count across it. */
  private void carryOver() {
    Path status = Path.of(args.get("status"));
    String before;
    try {
      before = Files.readString(status, StandardCharsets.UTF_8);
    } catch (Exception e) {
      return;
    }
    if (!before.contains("\"name\": " + json(args.get("name")) + ",")) {
      return;
    }
    ok = counter(before, "ok");
    failed = counter(before, "failed");
    reloads = counter(before, "reloads");
    restarts = counter(before, "restarts") + 1;
  }

  private static long counter(String text, String key) {
    Matcher m = Pattern.compile("\"" + key + "\": (\\d+)").matcher(text);
    return m.find() ? Long.parseLong(m.group(1)) : 0;
  }

  private static String sha256(byte[] data) throws Exception {
    StringBuilder out = new StringBuilder();
    for (byte b : MessageDigest.getInstance("SHA-256").digest(data)) {
      out.append(String.format("%02x", b));
    }
    return out.toString();
  }

  /** The SHA-256 of the leaf in the keystore: what this process presents from now on. */
  private String leafFingerprint() throws Exception {
    KeyStore store = KeyStore.getInstance("PKCS12");
    try (InputStream in = new FileInputStream(args.get("keystore"))) {
      store.load(in, password);
    }
    for (Enumeration<String> aliases = store.aliases(); aliases.hasMoreElements(); ) {
      String alias = aliases.nextElement();
      if (store.isKeyEntry(alias)) {
        Certificate[] chain = store.getCertificateChain(alias);
        return sha256(chain[0].getEncoded());
      }
    }
    throw new IllegalStateException("no key entry in " + args.get("keystore"));
  }

  private CqlSession connect() {
    String pw = new String(password);
    DriverConfigLoader config =
        DriverConfigLoader.programmaticBuilder()
            .withString(DefaultDriverOption.SSL_ENGINE_FACTORY_CLASS, "DefaultSslEngineFactory")
            .withString(DefaultDriverOption.SSL_KEYSTORE_PATH, args.get("keystore"))
            .withString(DefaultDriverOption.SSL_KEYSTORE_PASSWORD, pw)
            .withString(DefaultDriverOption.SSL_TRUSTSTORE_PATH, args.get("truststore"))
            .withString(DefaultDriverOption.SSL_TRUSTSTORE_PASSWORD, pw)
            .withBoolean(DefaultDriverOption.SSL_HOSTNAME_VALIDATION, false)
            .withDuration(DefaultDriverOption.SSL_KEYSTORE_RELOAD_INTERVAL, Duration.ofSeconds(1))
            .withString(DefaultDriverOption.REQUEST_CONSISTENCY, "QUORUM")
            .withDuration(DefaultDriverOption.REQUEST_TIMEOUT, Duration.ofSeconds(10))
            .withString(DefaultDriverOption.LOAD_BALANCING_LOCAL_DATACENTER, "dc1")
            .build();
    List<InetSocketAddress> points = new ArrayList<>();
    for (String host : args.getOrDefault("contact", "127.0.0.1,127.0.0.2,127.0.0.3").split(",")) {
      points.add(new InetSocketAddress(host, 9042));
    }
    return CqlSession.builder()
        .addContactPoints(points)
        .withConfigLoader(config)
        .withAuthProvider(new CertificateAuth())
        .withApplicationName(args.get("name"))
        .build();
  }

  /** Build a new session on the current files, switch to it, then close the old one. */
  private void swapSession() throws Exception {
    String sha = sha256(Files.readAllBytes(Path.of(args.get("keystore"))));
    String leaf = leafFingerprint();
    CqlSession fresh = connect();
    fresh.execute(
        "CREATE KEYSPACE IF NOT EXISTS apps WITH replication = "
            + "{'class': 'NetworkTopologyStrategy', 'dc1': 3}");
    fresh.execute("CREATE TABLE IF NOT EXISTS apps.kv (k text PRIMARY KEY, v text)");
    PreparedStatement ins = fresh.prepare("INSERT INTO apps.kv (k, v) VALUES (?, ?)");
    PreparedStatement sel = fresh.prepare("SELECT v FROM apps.kv WHERE k = ?");
    CqlSession old;
    synchronized (this) {
      old = session;
      session = fresh;
      insert = ins;
      select = sel;
      keystoreSha = sha;
      fingerprint = leaf;
    }
    if (old != null) {
      old.close();
    }
  }

  private void watch() {
    while (!stop) {
      try {
        Thread.sleep(1000);
        String sha = sha256(Files.readAllBytes(Path.of(args.get("keystore"))));
        if (!sha.equals(keystoreSha)) {
          swapSession();
          synchronized (this) {
            reloads++;
          }
        }
      } catch (InterruptedException e) {
        return;
      } catch (Exception e) { // keep serving on the old session
        synchronized (this) {
          lastError = "reload: " + e;
        }
      }
    }
  }

  private static String json(String value) {
    if (value == null) {
      return "null";
    }
    StringBuilder out = new StringBuilder("\"");
    for (char c : value.toCharArray()) {
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.append('"').toString();
  }

  private synchronized void writeStatus() throws Exception {
    double now = System.currentTimeMillis() / 1000.0;
    String error = lastError == null ? null : lastError.substring(0, Math.min(300, lastError.length()));
    String text =
        "{\"name\": " + json(args.get("name"))
            + ", \"driver\": \"java-driver\", \"pid\": " + ProcessHandle.current().pid()
            + ", \"ok\": " + ok + ", \"failed\": " + failed + ", \"reloads\": " + reloads
            + ", \"restarts\": " + restarts
            + ", \"fingerprint\": " + json(fingerprint) + ", \"last_error\": " + json(error)
            + ", \"last_ok\": " + (lastOk == 0 ? "null" : String.valueOf(lastOk))
            + ", \"argv\": " + args.getOrDefault("argv", "[]") + ", \"written\": " + now + "}";
    Path status = Path.of(args.get("status"));
    Path tmp = Path.of(args.get("status") + ".tmp");
    Files.writeString(tmp, text, StandardCharsets.UTF_8);
    Files.move(tmp, status, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }

  private void run() throws Exception {
    swapSession();
    Thread watcher = new Thread(this::watch, "keystore-watch");
    watcher.setDaemon(true);
    watcher.start();
    Thread main = Thread.currentThread();
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  stop = true;
                  try {
                    main.join(5000);
                  } catch (InterruptedException ignored) {
                  }
                }));
    double rate = Double.parseDouble(args.getOrDefault("rate", "20"));
    long interval = (long) (1000 / rate), lastStatus = 0;
    for (long i = 0; !stop; i++) {
      String key = args.get("name") + "-" + (i % 100);
      CqlSession s;
      PreparedStatement ins, sel;
      synchronized (this) {
        s = session;
        ins = insert;
        sel = select;
      }
      try {
        if (i % 2 == 0) {
          s.execute(ins.bind(key, "v"));
        } else {
          s.execute(sel.bind(key));
        }
        synchronized (this) {
          ok++;
          lastOk = System.currentTimeMillis() / 1000.0;
        }
      } catch (Exception e) { // every failure is counted
        synchronized (this) {
          failed++;
          lastError = e.getClass().getSimpleName() + ": " + e.getMessage();
        }
      }
      if (System.currentTimeMillis() - lastStatus >= 1000) {
        writeStatus();
        lastStatus = System.currentTimeMillis();
      }
      Thread.sleep(interval);
    }
    writeStatus();
    session.close();
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    }
    for (String need : new String[] {"name", "keystore", "truststore", "password-file", "status"}) {
      if (!args.containsKey(need)) {
        System.err.println("ClientApp: --" + need + " is required");
        System.exit(2);
      }
    }
    new ClientApp(args).run();
  }
}
