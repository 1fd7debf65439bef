# Example pillar for one Cassandra node managed by certdeploy.
# Give each minion only its own node's data (and, through the ext_pillar, only its own key).
certdeploy:
  cluster: prod-cassandra
  targets:
    cassandra:
      profile: cassandra
      node: cass-a1
      hostname: cass-a1.example.net
      listen_address: 10.0.0.11
      rpc_address: 10.0.0.11
      dc: dc1
      rack: rack1
      config_file: /etc/cassandra/cassandra.yaml
      client_port: 9042
      internode_port: 7000
      jmx_port: 7199
      # pkcs12 or pem (pem uses PEMBasedSslContextFactory: key + chain in one file)
      store_type: pkcs12
      keystore: /etc/cassandra/tls/keystore.p12
      keystore_password: change-me
      truststore: /etc/cassandra/tls/truststore.p12
      truststore_password: change-me
      owner: cassandra
      group: cassandra
      mode: '0600'
      client_auth: true
      # The identity certdeploy's CQL checks (health gate, verify) present. Without it they
      # present the node's own certificate. Under MutualTlsAuthenticator its identity must map
      # to a role (ADD IDENTITY ... TO ROLE) that may create and write the certdeploy_health
      # keyspace and read the system tables.
      # verify_client:
      #   cert: /etc/certdeploy/client.crt
      #   key: /etc/certdeploy/client.key
      backup_dir: /var/lib/certdeploy/backups
      backup_keep: 5
      min_days_remaining: 30
      # Omit `control` to use the `cassandra` service and `nodetool` from PATH.
      # control:
      #   service: cassandra
      #   nodetool: [nodetool, -h, 127.0.0.1, -p, '7199']
      #   # The reload without nodetool's JVM (contrib/reloadssl, compiled once with javac):
      #   # the same JMX call, about 0.5 s sooner per node. Default: nodetool reloadssl.
      #   reloadssl: [java, -cp, /opt/certdeploy/reloadssl, ReloadSsl, 127.0.0.1, '7199']
  # Rollouts triggered by renewals start only inside a window (UTC); `force` overrides.
  maintenance_windows:
    - days: [tue, wed, thu]
      start: '02:00'
      end: '05:00'

# The health beacon: served vs expected fingerprint, days to expiry, Prometheus textfile.
beacons:
  certdeploy:
    - interval: 60
    - target: cassandra
    - warn_days: 30
    - textfile: /var/lib/prometheus/node-exporter/certdeploy.prom
