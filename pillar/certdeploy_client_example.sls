# Example pillar for a client application managed by certdeploy (the `client` profile).
# The app runs on this minion; its bundle arrives as certdeploy:bundles:orders (the store's
# ext_pillar gives each minion only its own). With MutualTlsAuthenticator every certificate
# generation carries its own SPIFFE identity and maps to its own role, so the server shows
# which certificate each live connection logged in with (system_views.clients).
certdeploy:
  targets:
    orders:
      profile: client
      app: orders
      # pem: the key and the leaf + chain in one 0600 file (Python, cqlsh); pkcs12 for Java
      # (then give keystore_password and truststore_password).
      store_type: pem
      keystore: /etc/orders/tls/client.pem
      truststore: /etc/orders/tls/ca.pem
      owner: orders
      group: orders
      mode: '0600'
      # The URI SAN every leaf must carry, and the role it maps to (ADD IDENTITY ... TO ROLE).
      identity: spiffe://prod-cassandra/orders/{generation}
      role: orders_{generation}
      contact_points: ['10.0.0.11:9042', '10.0.0.12:9042', '10.0.0.13:9042']
      activate:
        # reload: the app reloads its files on the signal and reconnects every session;
        # restart; or watch (java-driver keystore-reload-interval): wait watch_seconds.
        # A truststore change always restarts: java-driver never reloads its truststore.
        method: reload
        reload: [systemctl, kill, --signal=HUP, orders]
        restart: [systemctl, restart, orders]
        watch_seconds: 40
      # Exit 0 when the app serves; part of verification and of the rollback's proof.
      health: [/usr/local/bin/orders-health]
      # Prints the app's pid(s). Verification then counts only the connections whose
      # (address, port) are that process's own sockets, so instances of one app on other
      # hosts (same roles, old generation until their batch) do not fail it. A rollout over
      # several instances sharing a role refuses to start without it.
      pid_command: [systemctl, show, --property=MainPID, --value, orders]
      # The identity that reads system_views.clients (not the app's own, so the reader does
      # not count itself); its role needs SELECT on system_views.
      verify_client:
        cert: /etc/certdeploy/client.crt
        key: /etc/certdeploy/client.key
      verify_timeout: 60
      backup_dir: /var/lib/certdeploy/backups
      backup_keep: 5
      min_days_remaining: 30
      # After a verified deployment, DROP IDENTITY the replaced leaf's identity and prove
      # every node refuses a login with it (verify_client's role needs that right). A later
      # rollback past it needs the identity added again.
      retire_old: false

    # A java-driver 4.18.1+ app: PKCS#12 stores, picked up by keystore-reload-interval.
    billing:
      profile: client
      app: billing
      store_type: pkcs12
      keystore: /etc/billing/tls/client.p12
      keystore_password: change-me
      truststore: /etc/billing/tls/truststore.p12
      truststore_password: change-me
      owner: billing
      group: billing
      mode: '0600'
      identity: spiffe://prod-cassandra/billing/{generation}
      role: billing_{generation}
      contact_points: ['10.0.0.11:9042', '10.0.0.12:9042', '10.0.0.13:9042']
      activate:
        method: watch
        watch_seconds: 40          # keystore-reload-interval (e.g. 30 s) plus a margin
        restart: [systemctl, restart, billing]   # a truststore change restarts it
      health: [/usr/local/bin/billing-health]
      pid_command: [systemctl, show, --property=MainPID, --value, billing]
      verify_client:
        cert: /etc/certdeploy/client.crt
        key: /etc/certdeploy/client.key
