# Example pillar for cqlsh with a client certificate (the `cqlsh` profile), e.g. an operator
# account or a scheduled job on this minion. certdeploy installs the PEM files and owns three
# parts of the cqlshrc: [connection] ssl, [ssl] (certfile, validate, usercert, userkey) and
# [auth_provider] (the driver's SaslAuthProvider, mechanism EXTERNAL: the certificate is the
# credential under MutualTlsAuthenticator). Other sections are kept; comments are not.
# Nothing is activated: cqlsh reads its files on every run. Verification runs this cqlsh
# against every contact point and requires each node to list it under the new role.
certdeploy:
  targets:
    ops:
      profile: cqlsh
      app: ops
      store_type: pem                       # cqlsh reads PEM only
      keystore: /root/.cassandra/ops.pem    # the key and the leaf + chain, 0600
      truststore: /root/.cassandra/ca.pem
      cqlshrc: /root/.cassandra/cqlshrc
      cqlsh: [/usr/bin/cqlsh]
      owner: root
      group: root
      mode: '0600'
      identity: spiffe://prod-cassandra/ops/{generation}
      role: ops_{generation}
      contact_points: ['10.0.0.11:9042', '10.0.0.12:9042', '10.0.0.13:9042']
      verify_client:
        cert: /etc/certdeploy/client.crt
        key: /etc/certdeploy/client.key
      verify_timeout: 60
      backup_dir: /var/lib/certdeploy/backups
      retire_old: false
