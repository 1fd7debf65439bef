// What `nodetool reloadssl` does, without nodetool's JVM of ~100 jars: one JMX call,
// MessagingService.reloadSslCertificates(), on a Cassandra 4.0+ node. Plain JDK classes only.
//
//   javac -d <dir> ReloadSsl.java
//   java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp <dir> ReloadSsl <host> <jmx port> \
//        [<jmx user> <password file>]
//
// The password file is nodetool's -pwf format ("<user> <password>" lines), so no password
// is ever on a command line. Exit 0 means the call was made: like nodetool, that proves
// nothing about the reload itself (Cassandra logs "Failed to hot reload" and keeps the old
// context); only the served certificate does, which is what certdeploy verifies next.
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public final class ReloadSsl {
  public static void main(String[] args) throws Exception {
    if (args.length != 2 && args.length != 4) {
      System.err.println("usage: ReloadSsl <host> <jmx port> [<jmx user> <password file>]");
      System.exit(2);
    }
    JMXServiceURL url =
        new JMXServiceURL("service:jmx:rmi:///jndi/rmi://" + args[0] + ":" + args[1] + "/jmxrmi");
    Map<String, Object> env = new HashMap<>();
    if (args.length == 4) {
      env.put(JMXConnector.CREDENTIALS, new String[] {args[2], password(Path.of(args[3]), args[2])});
    }
    try (JMXConnector connector = JMXConnectorFactory.connect(url, env)) {
      MBeanServerConnection server = connector.getMBeanServerConnection();
      server.invoke(
          new ObjectName("org.apache.cassandra.net:type=MessagingService"),
          "reloadSslCertificates",
          null,
          null);
    }
  }

  private static String password(Path file, String user) throws Exception {
    for (String line : Files.readAllLines(file)) {
      String[] fields = line.trim().split("\\s+", 2);
      if (fields.length == 2 && fields[0].equals(user)) {
        return fields[1];
      }
    }
    throw new IllegalArgumentException("no password for " + user + " in " + file);
  }
}
