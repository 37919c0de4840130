"""authlib as the app: the authorization code flow with PKCE, state and nonce, walked through
the provider's pages by a plain HTTP client (a browser without JavaScript), the ID token checked
by authlib against the JWKS; userinfo, refresh, introspection, revocation, client credentials
for a service account, and a key rotation between two logins. Run by run.sh."""

import base64
import json
import os
import re
import subprocess
import sys
import time
import traceback
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from authlib.integrations.base_client.sync_app import BaseApp, OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

ISSUER = os.environ["ISSUER"]
PY_URL = os.environ["PY_URL"]
CALLBACK = f"{PY_URL}/callback"
CLIENTS = os.environ["E2E_CLIENTS"]
USER = {"id": 777000333, "first_name": "Пётр", "last_name": "Сидоров", "username": "petr_e2e"}
# Another user for the login after the rotation: the emulator signs the same fields in the same
# second to the same hash, which the provider refuses as a replay.
USER2 = {"id": 777000444, "first_name": "Olga", "last_name": "Kuznetsova", "username": "olga_e2e"}
FAILED = 0


def client_file(name):
    with open(os.path.join(CLIENTS, f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


def check(name, fn):
    """Runs one named check and prints PASS or FAIL with authlib's own words."""
    global FAILED
    try:
        fn()
        print(f"PASS {name}", flush=True)
        return True
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        FAILED += 1
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        body = getattr(getattr(e, "response", None), "text", "")
        print(f"FAIL {name}: {detail}{' | ' + body[:400] if body else ''}", flush=True)
        return False


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_equal(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


class App(OAuth2Mixin, OpenIDMixin, BaseApp):
    """authlib's framework-neutral OAuth 2.0 + OpenID Connect client on requests."""

    client_cls = OAuth2Session


def make_app():
    c = client_file("python")
    return App(
        framework=None,
        client_id=c["client_id"],
        client_secret=c["client_secret"],
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid profile telegram offline_access",
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )


class Forms(HTMLParser):
    """The forms and links of a page, as a browser without JavaScript sees them."""

    def __init__(self):
        super().__init__()
        self.forms, self.links, self.html_lang = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        elif tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}, "buttons": []})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1]["buttons"].append((a["name"], a.get("value", "")))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def parse(response):
    p = Forms()
    p.feed(response.text)
    return p


def page_error(response):
    """What an error page tells the person, for the FAIL line."""
    m = re.search(r'<p class="error"[^>]*>(.*?)</p>', response.text, re.S)
    return m.group(1).strip() if m else response.text[:200]


def walk_to(session, response, stop_prefix):
    """Follows redirects by hand until one leaves for `stop_prefix` (the app)."""
    for _ in range(10):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response, None
        location = urljoin(response.url, response.headers["location"])
        if location.startswith(stop_prefix):
            return response, location
        response = session.get(location, allow_redirects=False)
    raise AssertionError("too many redirects")


def browser_login(auth_url, user, lang="en"):
    """Walks login page -> emulator -> callback -> consent -> app, posting the pages' own forms."""
    s = requests.Session()
    s.headers["Accept-Language"] = lang
    r, done = walk_to(s, s.get(auth_url, allow_redirects=False), CALLBACK)
    if done:
        return done, None
    expect(r.url.startswith(f"{ISSUER}/login"), f"expected the login page, got {r.status_code} {r.url}")
    login_lang = parse(r).html_lang
    emulator = next((l for l in parse(r).links if "/dev/telegram" in l), None)
    expect(emulator, "the login page has no link to the emulator")
    r = s.get(urljoin(r.url, emulator))
    form = parse(r).forms[0]
    fields = dict(form["fields"], id=str(user["id"]), first_name=user["first_name"],
                  last_name=user["last_name"], username=user["username"])
    r, done = walk_to(s, s.post(urljoin(r.url, form["action"]), data=fields, allow_redirects=False), CALLBACK)
    if done:
        return done, login_lang
    expect(r.url.startswith(f"{ISSUER}/consent"),
           f"expected the consent page, got {r.status_code} {r.url}: {page_error(r)}")
    form = parse(r).forms[0]
    expect(("decision", "approve") in form["buttons"], f"no Allow button on the consent page: {form}")
    r, done = walk_to(s, s.post(urljoin(r.url, form["action"]), data=dict(form["fields"], decision="approve"),
                                allow_redirects=False), CALLBACK)
    expect(done, f"the consent answer did not lead back to the app: {r.status_code} {r.url}")
    return done, login_lang


def code_flow(app, user, lang="en"):
    rv = app.create_authorization_url(redirect_uri=CALLBACK)
    query = parse_qs(urlsplit(rv["url"]).query)
    expect_equal(query.get("code_challenge_method"), ["S256"], "code_challenge_method")
    expect(query.get("nonce") and query.get("state"), "authlib sent no nonce or state")
    callback, login_lang = browser_login(rv["url"], user, lang)
    answer = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    expect_equal(answer.get("state"), rv["state"], "state in the callback")
    expect_equal(answer.get("iss"), ISSUER, "iss in the callback (RFC 9207)")
    token = app.fetch_access_token(redirect_uri=CALLBACK, code=answer["code"], code_verifier=rv["code_verifier"])
    claims = app.parse_id_token(token, nonce=rv["nonce"])
    return token, claims, login_lang


def kid_of(token):
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def check_claims(claims, user):
    expect_equal(claims["iss"], ISSUER, "iss")
    expect_equal(claims["aud"], client_file("python")["client_id"], "aud")
    expect_equal(claims["sub"], str(user["id"]), "sub")
    expect_equal(claims["name"], f"{user['first_name']} {user['last_name']}", "name")
    expect_equal(claims["preferred_username"], user["username"], "preferred_username")


def session_for(name):
    c = client_file(name)
    return OAuth2Session(c["client_id"], c["client_secret"], token_endpoint_auth_method="client_secret_basic")


def main():
    app = make_app()
    metadata = app.load_server_metadata()
    state = {}

    def login():
        token, claims, login_lang = code_flow(app, USER, lang="ru")
        check_claims(claims, USER)
        expect_equal(login_lang, "ru", "<html lang> of the login page asked for in Russian")
        state.update(token=token)

    if not check("authlib: code + PKCE + state + nonce without JavaScript, pages in Russian; authlib validates the ID token against the JWKS", login):
        return
    token = state["token"]

    def userinfo():
        info = app.userinfo(token=token)
        expect_equal(info["sub"], str(USER["id"]), "sub")
        expect_equal(info["telegram_username"], USER["username"], "telegram_username")

    check("authlib: userinfo with the access token", userinfo)

    def refresh_introspect_revoke():
        s = session_for("python")
        new = s.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
        expect(new["refresh_token"] != token["refresh_token"], "the refresh token did not rotate")
        answer = s.introspect_token(metadata["introspection_endpoint"], token=new["access_token"]).json()
        expect_equal(answer.get("active"), True, "introspection of the new access token")
        s.revoke_token(metadata["revocation_endpoint"], token=new["refresh_token"],
                       token_type_hint="refresh_token").raise_for_status()
        answer = s.introspect_token(metadata["introspection_endpoint"], token=new["refresh_token"]).json()
        expect_equal(answer.get("active"), False, "introspection after revocation")

    check("authlib: refresh rotates, introspection sees the token, revocation ends it", refresh_introspect_revoke)

    def client_credentials():
        s = OAuth2Session(client_file("service")["client_id"], client_file("service")["client_secret"],
                          scope="api:read", token_endpoint_auth_method="client_secret_basic")
        t = s.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        expect_equal(t.get("scope"), "api:read", "granted scope")
        expect("refresh_token" not in t, "client credentials must not issue a refresh token")
        keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
        at = jwt.decode(t["access_token"], keys)
        expect_equal(at.header.get("typ"), "at+jwt", "access token typ (RFC 9068)")
        expect_equal(at.claims["iss"], ISSUER, "access token iss")
        expect_equal(at.claims["client_id"], client_file("service")["client_id"], "access token client_id")
        expect_equal(at.claims["sub"], client_file("service")["client_id"], "access token sub")

    check("authlib: client credentials for a service account give an RFC 9068 access token", client_credentials)

    def rotation():
        out = subprocess.run(
            [os.environ["E2E_BIN"], "--config", os.environ["E2E_CLI_CONFIG"], "keys", "rotate", "--alg", "rs256"],
            check=True, capture_output=True, text=True).stdout
        new_kid = re.search(r"key (\S+) is now active", out).group(1)
        deadline = time.monotonic() + 30
        while not any(k["kid"] == new_kid for k in requests.get(metadata["jwks_uri"], timeout=10).json()["keys"]):
            expect(time.monotonic() < deadline, f"the JWKS did not publish {new_kid} within 30 s")
            time.sleep(0.25)
        # The app still holds the JWKS from the first login; authlib fetches it again on an unknown kid.
        expect(not any(k["kid"] == new_kid for k in app.server_metadata["jwks"]["keys"]), "authlib already had the new key")
        new_token, claims, _ = code_flow(app, USER2)
        check_claims(claims, USER2)
        expect_equal(kid_of(new_token["id_token"]), new_kid, "kid of the new ID token")
        expect(any(k["kid"] == new_kid for k in app.server_metadata["jwks"]["keys"]), "authlib did not fetch the new JWKS")

    check("authlib: after a key rotation authlib fetches the new key and validates the new ID token", rotation)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        FAILED += 1
        print(f"FAIL authlib: {e!r}", flush=True)
        traceback.print_exc()
    sys.exit(1 if FAILED else 0)
