# certdeploy/cert/renewed -> queue a rollout of exactly the named nodes (or the cluster).
# The payload carries names (and optionally not_before/force), never key material; what is
# deployed is the store's newest version, or the ext_pillar's pin. Fired on the master bus
# the data sits at the top level; fired by a minion (event.send) it sits under data['data'].
# Queuing is fast, so the reactor never blocks; the master's scheduler starts the rollout.
{%- set payload = data.get('data', data) %}
certdeploy-renewed:
  runner.certdeploy.enqueue:
    - args:
      - cluster: {{ payload.get('cluster') | json }}
      - minions: {{ payload.get('minions') | json }}
      - not_before: {{ payload.get('not_before') | json }}
      - force: {{ payload.get('force', False) | json }}
