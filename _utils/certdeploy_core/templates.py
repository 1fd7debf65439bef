"""HTML templates (Jinja2, rendered with autoescape). Kept as Python strings, not .j2 files:
``saltutil.sync_utils`` copies only Python modules into ``extmods/utils``."""

from __future__ import annotations

import jinja2

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

COMPLIANCE_HTML = """\
<!doctype html>
<html><head><meta charset="utf-8"><title>certdeploy compliance</title>
<style>body{font-family:sans-serif}td{padding:2px 8px;border-bottom:1px solid #ddd}
tr.bad{background:#fde8e8}</style>
</head><body>
<h1>certdeploy compliance</h1>
<p>{{ failures | length }} finding(s) across {{ nodes | length }} node(s)</p>
<table><tr><th>node</th><th>check</th><th>result</th><th>detail</th></tr>
{%- for minion, result in nodes.items() %}{% for f in result.findings %}
<tr class="{{ 'ok' if f.ok else 'bad' }}"><td>{{ minion }}</td><td>{{ f.check }}</td>
<td>{{ 'ok' if f.ok else 'FAIL' }}</td><td>{{ f.message }}</td></tr>
{%- endfor %}{% endfor %}
</table></body></html>
"""


REPORT_HTML = """\
{%- macro d(value) %}{{ dash if value is none or value == "" else value }}{% endmacro -%}
{%- macro badge(b) %}<span class="badge" style="background:{{ b.color }}">{{ b.text }}</span>{% endmacro -%}
{%- macro date(value) -%}
{%- if value is string or value is none %}<span class="nowrap">{{ d(value) }}</span>
{%- else %}<span class="nowrap">{{ value[0] }}</span><wbr><span class="nowrap">{{ value[1] }}</span>
{%- endif %}{% endmacro -%}
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">\
<meta name="viewport" content="width=device-width, initial-scale=1">\
<title>{{ d(title) }}</title><style>{{ css | safe }}</style></head><body>\
<header><h1>{{ d(job_id) }} {{ badge(status_badge) }}</h1><dl class="meta">
{%- for label, value in meta %}<dt>{{ label }}</dt><dd>{{ d(value) }}</dd>{% endfor -%}
<dt>Params</dt><dd>
{%- for key, value in params %}<span class="chip">{{ key }}={{ value }}</span>{% else %}{{ dash }}{% endfor -%}
</dd><dt>Plan</dt><dd><span class="mono">{{ d(batches) }}</span>
{%- if canary %} <span class="muted">canary: {{ canary }}</span>{% endif %}</dd></dl>
{%- if failures %}<div class="alert" id="errors">
{%- for name, error in failures %}<p><strong>{{ d(name) }}</strong>: {{ d(error) }}</p>{% endfor -%}
</div>{% endif %}</header>\
<section id="timeline"><h2>Timeline</h2><div class="gantt">{{ gantt | safe }}</div>\
<p class="muted">Hover a bar for step name and duration; * marks canary nodes.</p></section>\
<section id="nodes"><h2>Nodes</h2><div class="scroll"><table><thead><tr>
{%- for column in columns %}<th>{{ column }}</th>{% endfor %}</tr></thead><tbody>
{%- for n in nodes %}
<tr data-node="{{ n.name }}" data-state="{{ n.state }}"><td><strong>{{ d(n.name) }}</strong>
{%- if n.canary %} <span class="chip">canary</span>{% endif -%}
<div class="mono muted nowrap">{{ d(n.address) }}</div><div class="muted">{{ d(n.where) }}</div></td>\
<td>{{ badge(n.badge) }}</td><td>{{ d(n.method) }}</td>\
<td class="fp"><div class="label">old</div><div class="mono">{{ d(n.old) }}</div>\
<div class="label">\u2192 new</div><div class="mono">{{ d(n.new) }}</div></td>\
<td><div class="label">old</div><div>{{ date(n.old_not_after) }}</div>\
<div class="label">new</div><div>{{ date(n.not_after) }}</div></td>\
<td class="mono nowrap">{{ d(n.backup_id) }}</td>
{%- if n.timings %}<td><table class="mini">
{%- for step, seconds, total in n.timings %}<tr{% if total %} class="total"{% endif %}>\
<td>{{ step }}</td><td>{{ seconds }}</td></tr>{% endfor %}</table></td>
{%- else %}<td class="muted">{{ dash }}</td>{% endif %}
{%- if n.evidence %}<td><ul class="plain">
{%- for s in n.evidence.served %}
{%- if s.full %}<li>{{ s.label }} <span class="mono" title="{{ s.full }}">{{ s.short }}</span> \
<span class="{{ s.verdict[0] }}">{{ s.verdict[1] }}</span></li>
{%- else %}<li>{{ s.label }} <span class="muted">{{ dash }}</span></li>{% endif %}
{%- endfor -%}
<li>cql {% if n.evidence.cql is none %}<span class="muted">{{ dash }}</span>\
{% elif n.evidence.cql %}<span class="ok">ok</span>{% else %}<span class="bad">failed</span>{% endif %}</li>
{%- if n.evidence.ring %}<li class="wrap">ring {% for address, state, color in n.evidence.ring -%}
<span class="chip">{{ address }} <strong style="color:{{ color }}">{{ state }}</strong></span>
{%- endfor %}</li>{% else %}<li>ring <span class="muted">{{ dash }}</span></li>{% endif -%}
</ul></td>{% else %}<td class="muted">{{ dash }}</td>{% endif %}</tr>
{%- if n.error %}<tr class="error-row"><td colspan="{{ columns | length }}">\
<strong>{{ n.name }} error:</strong> {{ n.error }}</td></tr>{% endif %}
{%- else %}<tr><td colspan="{{ columns | length }}" class="muted">no nodes</td></tr>
{%- endfor %}</tbody></table></div></section>
{%- if load %}<section id="load"><h2>Load</h2><table><thead><tr>
{%- for c in ("Phase", "ops", "failed", "ops/s", "p50", "p99") %}<th>{{ c }}</th>{% endfor %}\
</tr></thead><tbody>
{%- for row in load %}<tr><td>{{ row.phase }}</td><td>{{ row.ops }}</td>\
<td{% if row.bad %} class="bad"{% endif %}>{{ row.failed }}</td><td>{{ row.ops_per_s }}</td>\
<td>{{ row.p50 }}</td><td>{{ row.p99 }}</td></tr>{% endfor %}</tbody></table></section>
{%- endif %}</body></html>
"""


def render(source: str, **context) -> str:
    return _ENV.from_string(source).render(**context)
