# Orchestrated deployment to chosen minions: certdeploy.deploy's safe path (validate, backup,
# install, activate, verify, automatic rollback) as a salt.function step. The step fails
# when any minion's outcome is not "deployed" (the module sets a non-zero retcode). Each
# minion compiles its pillar for the call (fresh_pillar), so no refresh_pillar is needed, e.g.
#   salt-run state.orchestrate orch.deploy_node pillar='{"certdeploy_deploy": {"tgt": "cass2"}}'
{%- set p = salt['pillar.get']('certdeploy_deploy', {}) %}
certdeploy-deploy:
  salt.function:
    - name: certdeploy.deploy
    - tgt: {{ p.get('tgt', 'none') | yaml_encode }}
    - tgt_type: {{ p.get('tgt_type', 'glob') }}
    - kwarg:
        method: {{ p.get('method', 'auto') }}
        skip_cross_trust: {{ p.get('skip_cross_trust', False) }}
        fresh_pillar: true
