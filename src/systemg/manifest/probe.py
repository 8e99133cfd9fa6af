"""The grammars of a health-check probe target: an ``http://`` URL and a ``tcp`` address. Pure.

Like ``values``, each ``parse_*`` takes what YAML produced and returns the canonical value or
raises ``GrammarError(message, hint)``; the caller adds the field path and location.

Invariants of what comes out, so the daemon's probes need no checks of their own:

* ``host`` is lower case: an IP literal (IPv6 without its brackets), ``localhost`` or a host
  name of the ``listen`` grammar (``values.is_host_name``), never ``*``, at most 253
  characters, and a dotted-decimal host is a valid IPv4 address (``127.0.0.256`` is a typo,
  not a name to look up);
* ``port`` is 1..65535 (80 when a URL names none);
* ``path`` is an HTTP request target: starts with ``/``, keeps the query, drops the fragment
  (never sent), printable ASCII only (spaces and non-ASCII percent-encoded the way a browser
  does; control characters are refused, they would corrupt the request line).

Only plain HTTP: an ``https://`` probe is refused (there is no TLS on the supervisor's loop),
as are credentials in the URL (``user:pw@``), which would need an ``Authorization`` header.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote

from systemg.manifest.kernel import shown
from systemg.manifest.model import DEFAULT_HTTP_PORT
from systemg.manifest.values import GrammarError, is_host_name, parse_host_port, parse_port

URL_HINT = "write http://HOST[:PORT]/PATH, e.g. http://127.0.0.1:8080/healthz"
TCP_HINT = "write HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:5432"
_HOST_MAX = 253  # the longest DNS name, dots included
_DOTTED_DECIMAL = re.compile(r"^[0-9.]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Left as they are in a request target; quote() also keeps letters, digits and "_.-~".
# Everything else (space, '"', '<', '>', '\\', '^', '`', '{', '|', '}', non-ASCII) is encoded.
_TARGET_SAFE = "!$%&'()*+,/:;=?@[]"


def parse_probe_url(value: object) -> tuple[str, int, str]:
    """``http://HOST[:PORT][/PATH][?QUERY][#FRAGMENT]`` -> ``(host, port, path_and_query)``."""
    raw = _text(value, "an http:// url", URL_HINT)
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise GrammarError(f"'{raw}' is not a url", f"write http://{raw}" if raw else URL_HINT)
    if scheme.lower() == "https":
        raise GrammarError(
            "https probes are not supported; use http or tcp",
            "probe the plain-HTTP port, check the TLS port with tcp: HOST:443, "
            "or use command: curl -fsS https://...",
        )
    if scheme.lower() != "http":
        raise GrammarError(f"'{scheme}://' is not a probe scheme", URL_HINT)
    rest = rest.partition("#")[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, target = rest[:cut], rest[cut:]
    if "@" in authority:
        raise GrammarError(
            f"'{raw}' has credentials; probes send no Authorization header",
            "probe an endpoint that needs no authentication, or use command: curl ...",
        )
    host, port = _authority(authority, raw)
    if not target.startswith("/"):
        target = "/" + target
    return host, port, quote(target, safe=_TARGET_SAFE)


def parse_probe_tcp(value: object) -> tuple[str, int]:
    """``HOST:PORT`` / ``[IPV6]:PORT`` -> ``(host, port)``: the ``listen`` grammar, no wildcard."""
    raw = _text(value, "a HOST:PORT address", TCP_HINT)
    if "://" in raw:
        raise GrammarError(
            f"'{raw}' is a url; a tcp probe takes HOST:PORT", "write 127.0.0.1:8080, or use url:"
        )
    host, port = parse_host_port(
        raw, what="a HOST:PORT address", hint=TCP_HINT, bare_hint=" (127.0.0.1:PORT for local)"
    )
    return _host(host, TCP_HINT), port


def _text(value: object, what: str, hint: str) -> str:
    if not isinstance(value, str):
        raise GrammarError(f"expected {what}", hint)
    raw = value.strip()
    bad = _CONTROL.search(raw)
    if bad is not None:
        raise GrammarError(
            f"{shown(raw, bad.start())} contains a control character at offset {bad.start()}",
            "remove it (percent-encode it in a url path, e.g. %0A)",
        )
    return raw


def _authority(authority: str, raw: str) -> tuple[str, int]:
    if not authority:
        raise GrammarError(f"'{raw}' names no host", URL_HINT)
    if authority.startswith("["):
        inside, sep, after = authority[1:].partition("]")
        if not sep:
            raise GrammarError(f"'{raw}' has an unclosed '['", "write http://[::1]:8080/")
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise GrammarError(f"'{inside}' is not an IPv6 address", URL_HINT) from None
        if after and not after.startswith(":"):
            raise GrammarError(f"'{raw}' is not a url", "write http://[::1]:8080/")
        return inside.lower(), _url_port(after[1:])
    host, _, port_text = authority.partition(":")
    if ":" in port_text:
        raise GrammarError(f"IPv6 address in '{raw}' needs brackets", "write http://[::1]:8080/")
    return _host(host, URL_HINT), _url_port(port_text)


def _url_port(text: str) -> int:
    # An empty port (``http://host:/``) is the default one, as in every URL parser.
    return parse_port(text, URL_HINT) if text else DEFAULT_HTTP_PORT


def _host(host: str, hint: str) -> str:
    if ":" in host:  # an IPv6 literal, already checked by whoever removed its brackets
        return host.lower()
    if not host or "*" in host or not is_host_name(host):
        raise GrammarError(f"'{host}' is not a host name or address", hint)
    if len(host) > _HOST_MAX:
        raise GrammarError(f"host name is longer than {_HOST_MAX} characters", hint)
    if _DOTTED_DECIMAL.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise GrammarError(f"'{host}' is not an IPv4 address", hint) from None
    return host.lower()
