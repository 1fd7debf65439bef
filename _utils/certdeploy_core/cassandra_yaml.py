"""Make the TLS keys of cassandra.yaml match the desired settings, touching nothing else.

How: ruamel.yaml round-trip parses the file; only the two encryption sections are edited in that
tree, and only their lines are re-emitted and spliced back into the original text. Every line
outside those sections is therefore kept byte-for-byte, whatever its indentation or style (a
whole-document dump would re-indent every other sequence to a single style). The result is then
re-read with a YAML 1.1 loader, as Cassandra's SnakeYAML reads it, and must hold exactly the
intended values before anything is returned or written.

Secrets: passwords are never put in ``changes``, errors or logs; only ``new_text`` holds them.
Pure functions; no Salt dunders.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter

import yaml as yaml11  # PyYAML resolves YAML 1.1 like Cassandra's SnakeYAML ("on" is a bool)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import (
    DoubleQuotedScalarString,
    LiteralScalarString,
    ScalarString,
    SingleQuotedScalarString,
)
from ruamel.yaml.tokens import CommentToken
from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import files as files_util

SECTIONS = ("server_encryption_options", "client_encryption_options")

_COMMON_KEYS = (
    "enabled",
    "optional",
    "keystore",
    "keystore_password",
    "truststore",
    "truststore_password",
    "store_type",
    "protocol",
    "accepted_protocols",
    "cipher_suites",
    "algorithm",
    "require_client_auth",
    "require_endpoint_verification",
    "ssl_context_factory",
)
_SERVER_ONLY_KEYS = (
    "internode_encryption",
    "outbound_keystore",
    "outbound_keystore_password",
    "legacy_ssl_storage_port_enabled",
)
# `nodetool reloadssl` re-reads the key/trust store *files* but never the yaml, so a change to
# any of these keys only takes effect after a restart.
RESTART_KEYS = frozenset(_COMMON_KEYS + _SERVER_ONLY_KEYS)
# Cassandra refuses to start on an unknown key, so a typo must be rejected here, not at restart.
ALLOWED_KEYS = {
    "server_encryption_options": frozenset(_COMMON_KEYS + _SERVER_ONLY_KEYS),
    "client_encryption_options": frozenset(_COMMON_KEYS),
}
HIDDEN = "<hidden>"
_ATTEMPTS = 3  # re-plans when the file is edited by hand between reading and writing it

# Words YAML 1.1 (SnakeYAML) resolves to bool/null: such strings must be quoted when written.
_YAML11_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}
_PLAIN_SAFE = re.compile(r"[A-Za-z/][A-Za-z0-9_./+-]*")
# Line breaks as ruamel counts them, so list indexes match its line numbers.
_LINES = re.compile(r"[^\r\n\x85\u2028\u2029]*(?:\r\n|[\r\n\x85\u2028\u2029]|$)")
_DEFAULT_INDENT = (2, 4, 2)  # mapping, sequence, offset: Cassandra's stock cassandra.yaml


def _is_secret(key) -> bool:
    """Keys whose values must never leave this module except in the file text itself."""
    key = str(key)
    return "password" in key or "private_key" in key


def _redact(key, value):
    """``value`` fit for reports: secrets hidden, also inside nested mappings."""
    if _is_secret(key) and value is not None:
        return HIDDEN
    if isinstance(value, dict):
        return {k: _redact(k, v) for k, v in value.items()}
    return value


def _plain(value):
    """ruamel round-trip objects -> plain Python (dict/list/str/int/...)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):  # drop ScalarString/ScalarInt/ScalarFloat wrappers
        if isinstance(value, kind):
            return kind(value)
    return value


def _same(a, b) -> bool:
    """Equality that does not let ``True == 1`` or ``"1" == 1`` hide a change."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _check_desired(desired) -> None:
    """Refuse unknown sections/keys and non-mapping input (SaltInvocationError)."""
    if not isinstance(desired, dict):
        raise SaltInvocationError(
            f"desired: expected a mapping of {' / '.join(SECTIONS)}, got {type(desired).__name__}"
        )
    for section, keys in desired.items():
        if section not in SECTIONS:
            raise SaltInvocationError(
                f"desired: unknown section {section!r}. Fix: use one of {', '.join(SECTIONS)}"
            )
        if not isinstance(keys, dict):
            raise SaltInvocationError(f"desired: {section}: expected a mapping of keys")
        unknown = sorted(str(k) for k in keys if k not in ALLOWED_KEYS[section])
        if unknown:
            raise SaltInvocationError(
                f"desired: {section}: unknown key(s) {', '.join(unknown)} (Cassandra would "
                f"refuse to start). Fix: use only {', '.join(sorted(ALLOWED_KEYS[section]))}"
            )


def _rt_yaml(indent=_DEFAULT_INDENT) -> YAML:
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 1 << 16  # never fold long lines (cipher lists, paths)
    mapping, sequence, offset = indent
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    return rt


def _yaml_error(exc: YAMLError, where: str) -> CommandExecutionError:
    """A parse error that names the position but never echoes file text (it may be a
    password: ruamel's own messages quote the offending values)."""
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    if isinstance(exc, DuplicateKeyError):
        problem = "duplicate key"
    elif isinstance(exc, MarkedYAMLError) and exc.problem:
        problem = re.sub(r"\"[^\"]*\"|'[^']*'", "'…'", str(exc.problem))
    else:
        problem = type(exc).__name__
    return CommandExecutionError(
        f"{where}: not valid YAML{at}: {problem}. Fix: correct the file by hand (or restore "
        "it from a certdeploy backup) and retry"
    )


def _load(text: str, where: str):
    """Round-trip tree (for editing) and YAML 1.1 plain view (Cassandra's reading)."""
    try:
        doc = _rt_yaml().load(text)
        view = yaml11.safe_load(text)
    except YAMLError as exc:
        raise _yaml_error(exc, where) from None
    except yaml11.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise CommandExecutionError(
            f"{where}: not valid YAML 1.1{at} (as Cassandra reads it). Fix: correct the file"
        ) from None
    if doc is None:
        doc, view = CommentedMap(), {}
    if not isinstance(doc, CommentedMap) or not isinstance(view, dict):
        raise CommandExecutionError(f"{where}: top level is not a mapping. Fix: correct the file")
    for section in SECTIONS:
        if doc.get(section) is not None and not isinstance(doc[section], CommentedMap):
            raise CommandExecutionError(
                f"{where}: {section} is not a mapping. Fix: make it a mapping of TLS options"
            )
    return doc, view


def _changes(view: dict, desired: dict) -> list[dict]:
    """Differences between Cassandra's current reading and ``desired``, secrets hidden."""
    changes = []
    for section in SECTIONS:
        current = view.get(section) or {}
        for key, new in desired.get(section, {}).items():
            old = current.get(key)
            if key in current and _same(_plain(old), _plain(new)):
                continue
            changes.append(
                {"section": section, "key": key, "old": _redact(key, old), "new": _redact(key, new)}
            )
    return changes


# --- rendering ---------------------------------------------------------------------------------


def _split_lines(text: str) -> list[str]:
    """Lines with their endings, split where ruamel counts line breaks."""
    return [line for line in _LINES.findall(text) if line]


def _block_items(node):
    """``(key column, value)`` of every block-mapping item under ``node``, depth first."""
    if isinstance(node, CommentedMap) and not node.fa.flow_style():
        for key, value in node.items():
            yield node.lc.key(key)[1], value
            yield from _block_items(value)
    elif isinstance(node, CommentedSeq) and not node.fa.flow_style():
        for item in node:
            yield from _block_items(item)


def _indent_votes(items) -> tuple[Counter, Counter]:
    """Count the mapping indents and (sequence, offset) pairs used by block items."""
    mappings, sequences = Counter(), Counter()
    for key_col, value in items:
        if not isinstance(value, CommentedMap | CommentedSeq) or not value:
            continue
        if value.fa.flow_style():
            continue
        if isinstance(value, CommentedMap):
            mappings[value.lc.key(next(iter(value)))[1] - key_col] += 1
        else:
            sequences[(value.lc.data[0][1] - key_col, value.lc.col - key_col)] += 1
    return mappings, sequences


def _detect_indent(doc: CommentedMap, section: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) to re-emit ``section`` with: what the section itself uses,
    else what most of the file uses, else Cassandra's stock (2, 4, 2)."""
    own_items = []
    if isinstance(doc.get(section), CommentedMap):
        own_items = [(doc.lc.key(section)[1], doc[section]), *_block_items(doc[section])]
    own, whole = _indent_votes(own_items), _indent_votes(_block_items(doc))
    mapping = next(
        (m for votes in (own[0], whole[0]) for m, _ in votes.most_common() if m >= 1),
        _DEFAULT_INDENT[0],
    )
    sequence, offset = next(
        (
            so
            for votes in (own[1], whole[1])
            for so, _ in votes.most_common()
            if so[0] >= so[1] + 2 and so[1] >= 0
        ),
        _DEFAULT_INDENT[1:],
    )
    return mapping, sequence, offset


def _to_yaml(value, old=None):
    """A desired value as a round-trip node. Strings keep the old quoting style, and are quoted
    whenever YAML 1.1 would read them as something else (a password "on" would become true)."""
    if isinstance(value, dict):
        node = old if isinstance(old, CommentedMap) else CommentedMap()
        for key in [k for k in node if k not in value]:
            del node[key]
        _set_keys(node, {k: _to_yaml(v, node.get(k)) for k, v in value.items()})
        return node
    if isinstance(value, list | tuple):
        node = CommentedSeq(_to_yaml(item) for item in value)
        if isinstance(old, CommentedSeq) and old.fa.flow_style():
            node.fa.set_flow_style()
        return node
    if isinstance(value, str) and not isinstance(value, ScalarString):
        if "\n" in value:
            return LiteralScalarString(value)
        if isinstance(old, SingleQuotedScalarString | DoubleQuotedScalarString):
            return type(old)(value)
        if not (_PLAIN_SAFE.fullmatch(value) and value.lower() not in _YAML11_WORDS):
            return SingleQuotedScalarString(value)
    return value


def _tail_slot(node, key, *, create: bool = False):
    """``(comment_list, index)`` for the comments/blank lines printed after item ``key`` of
    ``node``. ruamel files them under the deepest last item of a nested block, so that is where
    they are looked for (or, with ``create``, put). ``None`` if there are none."""
    value = node[key]
    if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
        last = next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1
        nested = _tail_slot(value, last, create=create)
        if nested:
            return nested
    index = 0 if isinstance(node, CommentedSeq) else 2  # ruamel's slot for "after this item"
    if create:
        return node.ca.items.setdefault(key, [None, None, None, None]), index
    slot = node.ca.items.get(key)
    return (slot, index) if slot and len(slot) > index and slot[index] else None


def _move_tail(source, target) -> None:
    """Move the comments in the ``source`` slot to the ``target`` slot (see ``_tail_slot``).
    An end-of-line comment stays where it is: it annotates its own line."""
    comments, index = source
    token = comments[index]
    if not isinstance(token, CommentToken):
        return
    text = token.value
    if text.startswith("#"):
        head, _, rest = text.partition("\n")
        if not rest:
            return
        comments[index] = CommentToken(head + "\n", token.start_mark, token.end_mark)
        text = "\n" + rest
    else:
        comments[index] = None
    target[0][target[1]] = CommentToken(text, token.start_mark, None)


def _replace(node: CommentedMap, key, value) -> None:
    """``node[key] = value``, keeping the comments that followed the old value after the new
    one (a new list would otherwise drop those filed under the old list's last item)."""
    if node[key] is value:
        return
    tail = _tail_slot(node, key)
    node[key] = value
    if tail:
        target = _tail_slot(node, key, create=True)
        if target[0] is not tail[0] or target[1] != tail[1]:
            _move_tail(tail, target)


def _set_keys(node: CommentedMap, values: dict) -> None:
    """Set ``values`` in ``node``: existing keys in place (their comments stay with them), new
    keys appended right after the last existing key, before the comments that followed it (they
    often end with the next section's header comment)."""
    if node.fa.flow_style():  # flow mappings hold no comments to keep in place
        node.update(values)
        return
    previous_last = next(reversed(node)) if node else None
    for key in [k for k in values if k in node]:
        _replace(node, key, values[key])
    added = [key for key in values if key not in node]
    if not added:
        return
    tail = _tail_slot(node, previous_last) if previous_last is not None else None
    for key in added:
        node[key] = values[key]
    if tail:
        _move_tail(tail, _tail_slot(node, added[-1], create=True))


def _render_section(doc: CommentedMap, section: str, indent) -> str:
    """The YAML text of ``section`` alone, as it appears in the document."""
    wrapper = CommentedMap()
    wrapper[section] = doc[section]
    slot = doc.ca.items.get(section)
    if slot:  # its end-of-line comment; leading comments (slot 1) stay outside the span
        wrapper.ca.items[section] = [slot[0], None, *slot[2:]]
    buf = io.StringIO()
    _rt_yaml(indent).dump(wrapper, buf)
    return buf.getvalue()


def _comment_lines(lines) -> list[str]:
    return [line.strip() for line in lines if line.strip().startswith("#")]


def _section_span(doc: CommentedMap, section: str, n_lines: int) -> tuple[int, int]:
    """Lines [start, end) of ``section``: from its key to the next top-level key. ruamel files
    the comments in between under the section's last item (re-emitted with it), except those
    it files as the next key's own leading comments (left in place)."""
    keys = list(doc)
    index = keys.index(section)
    start = doc.lc.key(section)[0]
    if index + 1 == len(keys):
        return start, n_lines
    following = keys[index + 1]
    end = doc.lc.key(following)[0]
    slot = doc.ca.items.get(following)
    for token in (slot[1] or []) if slot and len(slot) > 1 else []:
        if isinstance(token, CommentToken) and token.start_mark is not None:
            end = min(end, token.start_mark.line)
    return start, max(end, start + 1)


def _render(text: str, doc: CommentedMap, view: dict, desired: dict, where: str) -> str:
    """``text`` with the changed sections re-emitted and spliced in; other lines untouched."""
    lines = _split_lines(text)
    newline = "\r\n" if "\r\n" in text else "\n"
    sections = [s for s in SECTIONS if _changes(view, {s: desired.get(s, {})})]
    # Positions and indentation come from the parse, so take them all before editing the tree.
    indents = {s: _detect_indent(doc, s) for s in sections}
    spans = {s: _section_span(doc, s, len(lines)) for s in sections if s in doc}
    if doc.fa.flow_style():
        raise CommandExecutionError(
            f"{where}: layout not supported (flow-style top level). Fix: write the file in "
            "block style, one top-level key per line"
        )

    blocks = {}
    for section in sections:
        current = view.get(section) or {}
        wanted = {
            key: value
            for key, value in desired[section].items()
            if key not in current or not _same(_plain(current[key]), _plain(value))
        }
        if doc.get(section) is None:
            # An empty section: comments after its key must now follow its new keys.
            tail = _tail_slot(doc, section) if section in doc else None
            doc[section] = CommentedMap()
            _set_keys(doc[section], {k: _to_yaml(v) for k, v in wanted.items()})
            if tail:
                last = next(reversed(doc[section]))
                _move_tail(tail, _tail_slot(doc[section], last, create=True))
        else:
            node = doc[section]
            _set_keys(node, {k: _to_yaml(v, node.get(k)) for k, v in wanted.items()})
        blocks[section] = _render_section(doc, section, indents[section])
        if newline != "\n":
            blocks[section] = blocks[section].replace(newline, "\n").replace("\n", newline)

    for section in sorted(spans, key=lambda s: spans[s][0], reverse=True):
        start, end = spans[section]
        # Comments are only ever moved, never added or dropped: anything else means the
        # span or ruamel's comment filing was misread, so refuse rather than mangle the file.
        if _comment_lines(lines[start:end]) != _comment_lines(_split_lines(blocks[section])):
            raise CommandExecutionError(
                f"{where}: {section}: editing it would move or lose comments; nothing written. "
                "Fix: edit the TLS keys by hand this once"
            )
        lines[start:end] = [blocks[section]]
    for section in sections:
        if section not in spans:  # new section: appended at the end, after a blank line
            if lines and not lines[-1].endswith(("\n", "\r")):
                lines[-1] += newline
            if lines and lines[-1].strip():
                lines.append(newline)
            lines.append(blocks[section])
    return "".join(lines)


def _check_result(view: dict, new_text: str, desired: dict, where: str) -> None:
    """Re-read the result as Cassandra will and insist that exactly the desired keys changed:
    a guard against any emitter surprise before the file is replaced."""
    expected = dict(view)
    for section in SECTIONS:
        if desired.get(section):
            expected[section] = {**(view.get(section) or {}), **desired[section]}
    try:
        new_view = yaml11.safe_load(new_text)
    except yaml11.YAMLError:
        new_view = None
    if not isinstance(new_view, dict) or not _same(_plain(new_view), _plain(expected)):
        raise CommandExecutionError(
            f"{where}: internal check failed: the edited file would not read back as the desired "
            "settings; nothing written. Fix: edit the TLS keys by hand and report this file's "
            "layout (not its secrets) as a certdeploy bug"
        )


def plan(text: str, desired: dict, *, where: str = "cassandra.yaml") -> dict:
    """What enforcing ``desired`` on ``text`` (a cassandra.yaml) changes.

    ``desired`` holds only the keys to enforce, per section. Returns ``{"changes": [{"section",
    "key", "old", "new"}], "restart_required": bool, "new_text": str}``; passwords appear as
    ``<hidden>`` in ``changes`` but for real in ``new_text``. No difference -> ``new_text`` is
    ``text`` itself. ``where`` prefixes error messages (``"<node>: <path>"``).
    """
    _check_desired(desired)
    doc, view = _load(text, where)
    changes = _changes(view, desired)
    if not changes:
        return {"changes": [], "restart_required": False, "new_text": text}
    new_text = _render(text, doc, view, desired, where)
    _check_result(view, new_text, desired, where)
    return {
        "changes": changes,
        "restart_required": any(change["key"] in RESTART_KEYS for change in changes),
        "new_text": new_text,
    }


def _read_text(path: str, where: str) -> tuple[bytes, str]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise CommandExecutionError(
            f"{where}: not found. Fix: point certdeploy at this node's cassandra.yaml"
        ) from None
    except OSError as exc:
        raise CommandExecutionError(f"{where}: cannot read: {exc.strerror}") from exc
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandExecutionError(f"{where}: not UTF-8 text. Fix: re-encode it") from None


def _mode(mode, where: str) -> int | None:
    """``0o640``, ``"0640"`` or ``"640"`` -> int."""
    if mode is None or (isinstance(mode, int) and not isinstance(mode, bool)):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise SaltInvocationError(f"{where}: invalid mode {mode!r}. Fix: use e.g. '0640'") from None


def apply(
    path: str,
    desired: dict,
    *,
    node: str,
    test: bool = False,
    mode=None,
    owner=None,
    group=None,
) -> dict:
    """Enforce ``desired`` on the cassandra.yaml at ``path``, atomically.

    Keeps the file's mode/owner/group unless given. With ``test`` nothing is written.
    Returns ``{"changes", "restart_required", "path", "written"}``.
    """
    files_util.safe_path(path, "cassandra_yaml", node)
    where = f"{node}: {path}"
    mode = _mode(mode, where)
    for _attempt in range(_ATTEMPTS):
        data, text = _read_text(path, where)
        result = plan(text, desired, where=where)
        new_text = result.pop("new_text")
        if not result["changes"] or test:
            return {**result, "path": path, "written": False}
        meta = files_util.file_meta(path)
        if meta is None or meta["sha256"] != files_util.sha256_bytes(data):
            continue  # edited by hand while we planned: plan again on the operator's text
        written = files_util.atomic_write(
            path,
            new_text.encode("utf-8"),
            mode=mode if mode is not None else int(meta["mode"], 8),
            owner=owner or meta["owner"],
            group=group or meta["group"],
        )
        return {**result, "path": path, "written": written}
    raise CommandExecutionError(
        f"{where}: changed {_ATTEMPTS} times while being planned; nothing written. Fix: "
        "finish editing it, then deploy again"
    )


def read_tls(path: str, *, node: str | None = None, redact: bool = False) -> dict:
    """The two encryption sections as Cassandra reads them (plain dicts, ``{}`` if absent).

    Passwords are real values unless ``redact``: callers must not return them to users.
    """
    where = f"{node}: {path}" if node else os.fspath(path)
    _, text = _read_text(path, where)
    _, view = _load(text, where)
    sections = {section: _plain(view.get(section) or {}) for section in SECTIONS}
    if redact:
        sections = {s: {k: _redact(k, v) for k, v in keys.items()} for s, keys in sections.items()}
    return sections


def seed_addresses(path: str) -> list[str]:
    """The seed hosts of cassandra.yaml's ``seed_provider`` (ports stripped); ``[]`` when the
    file or the key cannot be read: callers use them only as a head start on the ring."""
    try:
        _, text = _read_text(path, os.fspath(path))
        _, view = _load(text, os.fspath(path))
        params = _plain(view.get("seed_provider") or [{}])[0].get("parameters") or [{}]
        seeds = str(params[0].get("seeds") or "")
    except (CommandExecutionError, AttributeError, IndexError, KeyError, TypeError):
        return []
    hosts = []
    for item in filter(None, (s.strip() for s in seeds.split(","))):
        if item.startswith("["):  # [v6]:port
            hosts.append(item[1 : item.find("]")])
        else:  # v4, name, v4:port, name:port, or a bare v6 address
            hosts.append(item.rsplit(":", 1)[0] if item.count(":") == 1 else item)
    return hosts
