"""Provider presets (src/popkeep/config/presets.toml): every one parses and is
consistent, addresses find theirs, and docs/providers.md shows them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from popkeep.config.presets import PRESETS_FILE, Preset, find, load_presets, split_address
from popkeep.errors import ConfigError

DOC = Path(__file__).parents[2] / "docs" / "providers.md"
BEGIN, END = "<!-- presets:begin -->", "<!-- presets:end -->"

#: what the issue asks for, at least
REQUIRED = {"ocn", "so-net", "biglobe", "nifty", "plala", "eo", "jcom", "auone", "yahoo-jp",
            "gmail", "outlook", "icloud", "gmx", "fastmail"}


def test_every_shipped_preset_parses_and_names_a_tls_mode_matching_its_port() -> None:
    presets = load_presets()
    assert {p.id for p in presets} >= REQUIRED
    for preset in presets:
        if not preset.pop:
            assert preset.quirks, preset.id  # says what to do instead
            continue
        assert preset.tls in ("implicit", "starttls"), preset.id
        assert preset.port != (110 if preset.tls == "implicit" else 995), preset.id
        assert (preset.auth == "oauth2") == (preset.oauth_provider is not None), preset.id
        assert preset.verified or "unverified" in preset.note or preset.note, preset.id


@pytest.mark.parametrize(("table", "error"), [
    ('tls = "implicit"\nport = 110', 'preset "x".port: port 110 is for tls = "starttls"'),
    ('tls = "starttls"\nport = 995', 'preset "x".port: port 995 is for tls = "implicit"'),
    ('tls = "none"\nport = 110', 'preset "x".tls: expected one of "implicit", "starttls"'),
    ('tls = "implicit"\nport = 995\ncolour = "red"', 'preset 1.colour: unknown key'),
])
def test_a_preset_that_contradicts_itself_is_refused(
    tmp_path: Path, table: str, error: str,
) -> None:
    path = tmp_path / "presets.toml"
    path.write_text(
        '[[preset]]\nid = "x"\nname = "X"\ndomains = ["x.example"]\nhost = "pop.x.example"\n'
        f'{table}\nuser = "address"\nauth = "password"\nquirks = []\nverified = false\n'
        'note = "test"\nsources = []\n'
    )
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)")):
        load_presets(path)


@pytest.mark.parametrize(("address", "preset", "host", "login"), [
    ("taro@ocn.ne.jp", "ocn", "pop.ocn.ne.jp", "taro@ocn.ne.jp"),
    ("taro@ab.auone-net.jp", "auone", "pop.ab.auone-net.jp", "taro@ab.auone-net.jp"),
    ("Taro@Yahoo.CO.JP", "yahoo-jp", "pop.mail.yahoo.co.jp", "Taro"),
    ("me@gmail.com", "gmail", "pop.gmail.com", "me@gmail.com"),
    ("me@hotmail.co.jp", "outlook", "outlook.office365.com", "me@hotmail.co.jp"),
])
def test_an_address_finds_its_providers_server(
    address: str, preset: str, host: str, login: str,
) -> None:
    found = find(address)
    assert found is not None and found.id == preset
    assert found.server(split_address(address)[1]) == host
    assert found.login(address) == login


def test_an_unknown_domain_has_no_preset_and_a_wildcard_needs_a_subdomain() -> None:
    assert find("someone@example.org") is None
    assert find("someone@auone-net.jp") is None  # only *.auone-net.jp is documented
    with pytest.raises(ConfigError, match="not an email address"):
        find("no-at-sign")


def providers_table(presets: tuple[Preset, ...]) -> str:
    """The table and notes docs/providers.md shows, generated from the presets."""
    rows = ["| provider | domains | POP3 server | TLS | sign-in | retention facts | checked |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in presets:
        domains = ", ".join(f"`{d}`" for d in p.domains)
        if not p.pop:
            rows.append(f"| {p.name} | {domains} | no POP3 | | | | {_checked(p)} |")
            continue
        sign_in = "password" if p.auth == "password" else f"OAuth 2.0 ({p.oauth_provider})"
        facts = []
        if p.server_deletes_after is not None:
            facts.append(f"deletes mail after {p.server_deletes_after.days} days")
        if p.server_quota is not None:
            facts.append(f"quota {p.server_quota // 10**9} GB")
        rows.append(
            f"| {p.name} | {domains} | `{p.host}:{p.port}` | {p.tls} | {sign_in} | "
            f"{'; '.join(facts)} | {_checked(p)} |"
        )
    notes = [f"- **{p.name}**: " + " ".join((*p.quirks, p.note)) for p in presets]
    return "\n".join(rows) + "\n\n" + "\n".join(notes)


def _checked(preset: Preset) -> str:
    return "yes" if preset.verified else "partly (see note)"


def test_docs_providers_md_shows_every_preset() -> None:
    text = DOC.read_text(encoding="utf-8")
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    expected = providers_table(load_presets())
    assert shown == expected, f"docs/providers.md is stale; the table should read:\n{expected}"


def test_the_presets_file_ships_in_the_package() -> None:
    assert PRESETS_FILE.parent.name == "config" and PRESETS_FILE.is_file()
