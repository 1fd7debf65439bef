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


def render(source: str, **context) -> str:
    return _ENV.from_string(source).render(**context)
