# Example pillar for targets that run in containers (the `container` profile). certdeploy
# writes the stores into host_dir, which the container bind-mounts as a DIRECTORY at
# container_dir (never single files: validation refuses them), owned by the image's uid/gid.
certdeploy:
  targets:
    # A client application in a container, reloaded by SIGHUP (`podman run --init` forwards it).
    orders:
      profile: container
      runs: client
      engine: [podman]
      container: orders
      app: orders
      host_dir: /srv/orders/tls
      container_dir: /etc/orders/tls
      keystore: client.pem          # relative to host_dir and container_dir
      truststore: ca.pem
      store_type: pem
      uid: 999                      # the app's user inside the image
      gid: 999
      mode: '0600'
      identity: spiffe://prod-cassandra/orders/{generation}
      role: orders_{generation}
      contact_points: ['10.0.0.11:9042', '10.0.0.12:9042', '10.0.0.13:9042']
      activate:
        method: signal              # exec | signal | restart
        signal: HUP
        restart_grace: 30           # podman restart -t 30 orders
      health: [/usr/local/bin/orders-health]
      verify_client:
        cert: /etc/certdeploy/reader.crt
        key: /etc/certdeploy/reader.key
    # A Cassandra node in a container, reloaded by `podman exec cass-a1 nodetool reloadssl`.
    cassandra:
      profile: container
      runs: cassandra
      engine: [podman]
      container: cass-a1
      host_dir: /srv/cass-a1/tls
      container_dir: /etc/cassandra/tls
      keystore: keystore.p12
      truststore: truststore.p12
      keystore_password: change-me
      truststore_password: change-me
      store_type: pkcs12
      uid: 999
      gid: 999
      mode: '0600'
      config_file: /srv/cass-a1/conf/cassandra.yaml   # host path; its directory is mounted
      listen_address: 10.0.0.11     # where the host reaches the published 7000 and 9042
      client_port: 9042
      internode_port: 7000
      nodetool: [nodetool]          # inside the container
      activate:
        method: exec
        restart_grace: 30
