# certdeploy/health/failed (from the certdeploy beacon on a minion) -> roll that node back if
# certdeploy deployed to it recently; otherwise the runner only fires certdeploy/alert.
{%- set payload = data.get('data', data) %}
certdeploy-health-failed:
  runner.certdeploy.health_failed:
    - args:
      - minion: {{ payload.get('minion', data.get('id')) | json }}
      - node: {{ payload.get('node') | json }}
      - reason: {{ payload.get('reason') | json }}
      - target: {{ payload.get('target', 'cassandra') | json }}
