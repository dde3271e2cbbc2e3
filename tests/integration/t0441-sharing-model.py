"""The sharing model, tested against a reference (issue 7, "Prove it").

A small model of docs/sharing.md in Python (the owner's edge, links, grants
and tokens; role permissions, readOnly, reshare, expiry, revocation; an edge
grants own ∩ parent's, read-only if any edge above is, nothing once any edge
above is revoked or expired) and granaryd receive the same random operations:
share and re-share (links and tokens, through the best grant or one named by
via), open a link as an anonymous visitor, as the owner or as one of four
users, open the grain from the API, change roles (down and up), revoke, drop
a grant, let short expiries pass. After every step the whole sharing tree
(each edge's effective grant), every user's access (GET /api/grains) and the
sessions the step touched are compared with the model; every few steps every
open session (X-Granary-Permissions as the app sees it, read-only: POST 403,
dead: 404) and, when the api. host is served, every API token.

GRANARY_SHARING_STEPS (default 1200, about 55 s) sets the number of steps and
GRANARY_SHARING_SEED the seed (default: random, printed). A mismatch fails
with the seed and every step so far.

Where docs/sharing.md leaves a point open the model takes docs/api.md's
word: PATCH by the owner or the edge's maker (the maker within what they hold
now), DELETE by the owner, the maker or the holder, a grant's maker is its
link's maker, tokens are held by their maker and are not held grants.
"""
import os
import random
import sys
import time

import pytest

from sharing import (World, grain_test_manifest_spk, start_daemon, stop_daemon, Packager)

STEPS = int(os.environ.get("GRANARY_SHARING_STEPS", "1200"))
SEED = int(os.environ.get("GRANARY_SHARING_SEED", str(random.SystemRandom().randrange(1 << 32))))
USERS = ("bob", "carol", "dave", "erin")
# How late a session may notice that an edge of its chain expired (the tree
# and the API answer exactly; sessions re-check on a timer).
SESSION_EXPIRY_SLACK = 2.5

PERMISSIONS = ("read", "write", "comment", "admin")
ROLES = {
    "editor": ({"read", "write", "comment"}, False),
    "viewer": ({"read"}, True),
    "commenter": ({"read", "comment"}, False),
    "admin": ({"read", "write", "comment", "admin"}, False),
    "auditor": ({"read", "admin"}, True),
    "guest": (set(), True),
}
MANIFEST_ROLES = [{"name": name, "permissions": [p for p in PERMISSIONS if p in perms],
                   "readOnly": ro, **({"default": True} if name == "editor" else {})}
                  for name, (perms, ro) in ROLES.items()]
OWNER = (frozenset(PERMISSIONS), False, True, 0)  # perms, read-only, reshare, depth


class Mismatch(AssertionError):
    pass


class Edge:
    def __init__(self, id, kind, parent, role, maker, holder, reshare, login_required,
                 expires_at):
        self.id, self.kind, self.parent, self.role = id, kind, parent, role
        self.maker, self.holder = maker, holder
        self.reshare, self.login_required, self.expires_at = reshare, login_required, expires_at
        self.revoked = False

    def __repr__(self):
        return (f"#{self.id} {self.kind} {self.role} parent={self.parent} by={self.maker} "
                f"holder={self.holder} reshare={self.reshare} exp={self.expires_at} "
                f"revoked={self.revoked}")


class Model:
    def __init__(self):
        self.edges = {}

    def grant(self, edge_id, t):
        """What edge edge_id grants at time t: (perms, read-only, reshare, depth) or None."""
        chain = []
        e = self.edges[edge_id]
        while True:
            chain.append(e)
            if e.parent is None:
                break
            e = self.edges[e.parent]
        perms, ro, reshare, depth = OWNER
        for e in reversed(chain):
            if e.revoked or (e.expires_at is not None and t >= e.expires_at):
                return None
            role_perms, role_ro = ROLES[e.role]
            perms, ro, reshare = perms & role_perms, ro or role_ro, reshare and e.reshare
            depth += 1
        return (frozenset(perms), ro, reshare, depth)

    def expiries(self, edge_id):
        out = []
        e = self.edges[edge_id]
        while True:
            if e.expires_at is not None:
                out.append(e.expires_at)
            if e.parent is None:
                return out
            e = self.edges[e.parent]

    def held(self, user, t, via=None):
        """The user's best held grant at t (docs/sharing.md: most permissions,
        then writable, then oldest): (id, grant) or None."""
        best = None
        for e in sorted(self.edges.values(), key=lambda e: e.id):
            if e.kind != "grant" or e.holder != user or (via is not None and e.id != via):
                continue
            g = self.grant(e.id, t)
            if g is None:
                continue
            if best is None or (len(g[0]), not g[1]) > (len(best[1][0]), not best[1][1]):
                best = (e.id, g)
        return best

    def grant_from(self, link_id, user):
        for e in self.edges.values():
            if e.kind == "grant" and e.parent == link_id and e.holder == user:
                return e
        return None

    def visible(self, user):
        """The edges user sees in GET .../shares: made by them or below one
        they made, and the ones they hold."""
        made, out = set(), set()
        for e in sorted(self.edges.values(), key=lambda e: e.id):
            if e.maker == user or (e.parent in made):
                made.add(e.id)
            if e.id in made or e.holder == user:
                out.add(e.id)
        return out


def exceeds(role, held):
    perms, ro = ROLES[role]
    return not perms <= held[0] or (held[1] and not ro)


class Session:
    def __init__(self, kind, edge, user, grain_session):
        self.kind, self.edge, self.user, self.http = kind, edge, user, grain_session
        self.dead_checked = False


class Run:
    def __init__(self, world, grain, rng, api_served):
        self.w, self.grain, self.rng, self.api_served = world, grain, rng, api_served
        self.model = Model()
        self.sessions = []
        self.tokens = {}  # edge id -> token
        self.links = {}  # edge id -> url
        self.log = []
        self.step = 0
        self.counts = {}
        self.outcomes_seen = {}  # "what outcome": how often, to show what the run covered

    # ---- reporting

    def note(self, text, outcome=None):
        self.log.append(f"{self.step:5}: {text}")
        if outcome:
            self.outcomes_seen[outcome] = self.outcomes_seen.get(outcome, 0) + 1

    def fail(self, text):
        raise Mismatch(f"seed {SEED} (GRANARY_SHARING_SEED={SEED} to replay), step {self.step}: "
                       f"{text}\nsteps so far:\n" + "\n".join(self.log) +
                       "\nmodel edges:\n" + "\n".join(map(repr, self.model.edges.values())))

    def expect(self, got, want, what):
        if got not in want:
            self.fail(f"{what}: granaryd {got!r}, the model {' or '.join(map(repr, want))}")

    def outcomes(self, f, before, after, slack=0.0):
        """The model's answers f(t) over [before - slack, after]: at both ends
        and around every expiry inside (expiry only ever takes away)."""
        times = {before - slack - 0.05, after + 0.05}
        for e in self.model.edges.values():
            if e.expires_at is not None and before - slack - 0.05 <= e.expires_at <= after + 0.05:
                times.update((e.expires_at - 0.001, e.expires_at + 0.001))
        return {f(t) for t in times}

    # ---- operations

    def holders(self, t):
        return ["alice"] + [u for u in USERS if self.model.held(u, t)]

    def new_edge_fields(self, kind):
        fields = {"role": self.rng.choice(list(ROLES))}
        x = self.rng.random()
        if x < 0.15:
            fields["expiresIn"] = self.rng.randint(2, 5)
        elif x < 0.25:
            fields["expiresIn"] = 3600
        if kind == "shares":
            if self.rng.random() < 0.2:
                fields["reshare"] = False
            if self.rng.random() < 0.2:
                fields["loginRequired"] = True
        return fields

    def predict_share(self, actor, role, via, t):
        """(status, the new edge's parent or the error's code)."""
        if actor == "alice":
            return (201, None)
        held = self.model.held(actor, t, via)
        if held is None:
            return (404, "no_such_share" if via is not None else "no_such_grain")
        if not held[1][2]:
            return (403, "no_reshare")
        if exceeds(role, held[1]):
            return (403, "role_exceeds_yours")
        return (201, held[0])

    def op_share(self, kind):
        now = time.time()
        actors = self.holders(now)
        if self.rng.random() < 0.1:
            actors = [u for u in USERS if u not in actors] or actors
        actor = self.rng.choice(actors)
        via = None
        if actor != "alice" and self.rng.random() < 0.25:
            mine = [e.id for e in self.model.edges.values()
                    if e.kind == "grant" and e.holder == actor and self.model.grant(e.id, now)]
            via = self.rng.choice(mine) if mine else None
        fields = self.new_edge_fields(kind)
        if via is not None:
            fields["via"] = via
        role = fields["role"]
        before = time.time()
        held = self.model.held(actor, before + 0.3, via) if actor != "alice" else (None, OWNER)
        if held and held[1][3] >= 20:
            return  # far below the depth limit; the model does not go there
        r = self.w.share(self.grain, actor, kind=kind, **fields)
        after = time.time()
        want = self.outcomes(lambda t: self.predict_share(actor, role, via, t), before, after)
        body = r.json()
        got = (201, body["share"]["parent"]) if r.status_code == 201 else \
            (r.status_code, body.get("error", {}).get("code"))
        self.note(f"{actor} {kind} {fields} -> {r.status_code} "
                  f"{body.get('error', {}).get('code') or '#%s' % body['share']['id']}",
                  f"{kind} {'owner' if actor == 'alice' else 'reshare'} {got[0]} "
                  f"{got[1] if got[0] != 201 else ''}".strip())
        self.expect(got, want, "sharing")
        if r.status_code != 201:
            return
        s = body["share"]
        e = Edge(s["id"], "token" if kind == "tokens" else "link", s["parent"], role, actor,
                 actor if kind == "tokens" else None,
                 kind == "shares" and fields.get("reshare", True),
                 bool(fields.get("loginRequired")), s["expiresAt"])
        if s["expiresAt"] is not None and s["expiresAt"] - s["createdAt"] != fields["expiresIn"]:
            self.fail(f"expiresAt {s['expiresAt']} - createdAt {s['createdAt']} is not "
                      f"{fields['expiresIn']}")
        self.model.edges[e.id] = e
        if kind == "tokens":
            self.tokens[e.id] = body["token"]
        else:
            self.links[e.id] = body["url"]

    def op_open(self):
        links = [e for e in self.model.edges.values() if e.kind == "link"]
        if not links:
            return
        now = time.time()
        live = [e for e in links if self.model.grant(e.id, now)]
        link = self.rng.choice(live if live and self.rng.random() < 0.85 else links)
        x = self.rng.random()
        visitor = None if x < 0.35 else "alice" if x < 0.45 else self.rng.choice(USERS)
        existing = self.model.grant_from(link.id, visitor) if visitor else None
        if visitor and visitor != "alice" and not existing and \
                sum(1 for e in self.model.edges.values()
                    if e.holder == visitor and not e.revoked) >= 40:
            return  # the server looks at a bounded number of grants per person
        before = time.time()
        client = self.w.clients[visitor] if visitor else None
        visit = self.w.open_link(self.links[link.id], visitor, client=client)
        after = time.time()

        def predict(t):
            if self.model.grant(link.id, t) is None:
                return "refused"
            if visitor is None:
                return "refused" if link.login_required else "session"
            if existing is not None and existing.revoked:
                return "refused"
            return "session"

        got = "session" if visit.session else "refused"
        self.note(f"{visitor or 'anonymous'} opens #{link.id} -> {visit.response.status_code}"
                  f"{' ' + visit.session.host if visit.session else ''}",
                  f"open {'owner' if visitor == 'alice' else 'user' if visitor else 'anon'} "
                  f"{visit.response.status_code}")
        self.expect(got, self.outcomes(predict, before, after), "opening a link")
        if not visit.session:
            return
        if visitor == "alice":
            sess = Session("owner", None, "alice", visit.session)
        elif visitor is None:
            sess = Session("anonymous", link.id, None, visit.session)
        else:
            if existing is None:
                found = self.w.grant_of(self.grain, link.id, visitor)
                if not found:
                    self.fail(f"{visitor} opened #{link.id} but holds no grant from it")
                existing = Edge(found["id"], "grant", link.id, link.role, link.maker, visitor,
                                link.reshare, False, None)
                self.model.edges[existing.id] = existing
                self.note(f"   -> grant #{existing.id}")
                if found["role"] != link.role:
                    self.fail(f"grant #{found['id']} has role {found['role']}, its link "
                              f"{link.role}")
            sess = Session("user", existing.id, visitor, visit.session)
        self.track(sess)
        self.check_session(sess, full=True)

    def op_api_open(self):
        user = self.rng.choice(USERS)
        before = time.time()
        status, gs = self.w.open_grain(self.grain, user)
        after = time.time()
        want = self.outcomes(lambda t: (self.model.held(user, t) or (None,))[0], before, after)
        self.note(f"{user} opens the grain from the API -> {status}")
        if status != 201:
            self.expect(None, want, f"{user}'s POST open")
            return
        if len(want) > 1:
            return  # which grant it is bound to depends on the instant
        edge = next(iter(want))
        if edge is None:
            self.fail(f"{user} opened the grain holding nothing")
        sess = Session("user", edge, user, gs)
        self.track(sess)
        self.check_session(sess, full=True)

    def actor_for(self, e):
        x = self.rng.random()
        if x < 0.45:
            return "alice"
        if x < 0.75 and e.maker != "alice":
            return e.maker
        if x < 0.85 and e.holder and e.holder != "alice":
            return e.holder
        return self.rng.choice(USERS)

    def predict_change(self, actor, e, role, t, revoke):
        if actor == "alice":
            return (200, None)
        held = self.model.held(actor, t)
        if held is None:
            return (404, "no_such_grain")
        if actor != e.maker and actor != e.holder:
            return (404, "no_such_share")
        if revoke:
            return (200, None)
        if actor != e.maker:
            return (403, "forbidden")
        if exceeds(role, held[1]):
            return (403, "role_exceeds_yours")
        return (200, None)

    def op_change(self, revoke):
        edges = [e for e in self.model.edges.values() if not e.revoked]
        if not edges:
            return
        e = self.rng.choice(edges)
        actor = self.actor_for(e)
        role = None if revoke else self.rng.choice(list(ROLES))
        before = time.time()
        r = self.w.revoke(self.grain, actor, e.id) if revoke else \
            self.w.patch(self.grain, actor, e.id, role)
        after = time.time()
        body = r.json()
        got = (r.status_code, body.get("error", {}).get("code") if r.status_code != 200 else None)
        self.note(f"{actor} {'revokes' if revoke else 'sets ' + role + ' on'} #{e.id} "
                  f"({e.kind} by {e.maker}) -> {got}",
                  f"{'revoke' if revoke else 'patch'} {'owner' if actor == 'alice' else 'other'} "
                  f"{got[0]} {got[1] or ''}".strip())
        self.expect(got, self.outcomes(lambda t: self.predict_change(actor, e, role, t, revoke),
                                       before, after), "changing an edge")
        if r.status_code != 200:
            return
        if revoke:
            e.revoked = True
            if body["share"]["revokedAt"] is None:
                self.fail(f"#{e.id} revoked without revokedAt")
        else:
            e.role = role
        # Everything below it changed: check its sessions now.
        for s in list(self.sessions):
            if s.edge is not None and self.below(s.edge, e.id):
                self.check_session(s, full=True)
        for tid in list(self.tokens):
            if self.below(tid, e.id):
                self.check_token(tid)

    def below(self, edge_id, ancestor):
        while edge_id is not None:
            if edge_id == ancestor:
                return True
            edge_id = self.model.edges[edge_id].parent
        return False

    # ---- checks

    def track(self, sess):
        self.sessions.append(sess)
        if len(self.sessions) > 40:
            self.sessions.pop(self.rng.randrange(len(self.sessions)))

    def session_model(self, sess, t):
        if sess.kind == "owner":
            return (frozenset(PERMISSIONS), False)
        g = self.model.grant(sess.edge, t)
        return None if g is None else (g[0], g[1])

    def check_session(self, sess, full):
        before = time.time()
        status, seen = sess.http.echo()
        after = time.time()
        want = self.outcomes(lambda t: self.session_model(sess, t), before, after,
                             SESSION_EXPIRY_SLACK)
        what = f"session {sess.http.host[:11]}… ({sess.kind} {sess.user or ''} via #{sess.edge})"
        self.outcomes_seen["session checks"] = self.outcomes_seen.get("session checks", 0) + 1
        if status != 200:
            self.outcomes_seen["dead sessions"] = self.outcomes_seen.get("dead sessions", 0) + 1
            self.expect(status, {404}, what + " status")
            self.expect(None, want, what)
            if sess.dead_checked:
                self.sessions.remove(sess)
            sess.dead_checked = True
            return
        values = seen.get("x-granary-permissions", [])
        if len(values) != 1:
            self.fail(f"{what}: X-Granary-Permissions {values}")
        perms = frozenset(p for p in values[0].split(",") if p)
        self.expect(perms, {w[0] for w in want if w}, what + " permissions")
        name = seen.get("x-granary-username", [None])[0]
        self.expect(name, {sess.user}, what + " X-Granary-Username")
        if full:
            before = time.time()
            code = sess.http.post("/upload")
            after = time.time()
            want = self.outcomes(lambda t: self.session_model(sess, t), before, after,
                                 SESSION_EXPIRY_SLACK)
            expected = {404 if w is None else 403 if w[1] else 200 for w in want}
            self.expect(code, expected, what + " POST")

    def check_token(self, tid):
        if not self.api_served:
            return
        before = time.time()
        r = self.w.api(self.tokens[tid])
        after = time.time()
        want = self.outcomes(lambda t: self.model.grant(tid, t), before, after,
                             SESSION_EXPIRY_SLACK)
        what = f"token #{tid}"
        if r.status_code != 200:
            self.expect(r.status_code, {401}, what + " status")
            self.expect(None, want, what)
            del self.tokens[tid]
            return
        values = [v for k, v in r.json()["headers"] if k.lower() == "x-granary-permissions"]
        perms = frozenset(p for p in values[0].split(",") if p) if len(values) == 1 else None
        self.expect(perms, {w[0] for w in want if w}, what + " permissions")

    def check_tree(self):
        before = time.time()
        shares = self.w.shares(self.grain)
        after = time.time()
        got_ids = [s["id"] for s in shares]
        if set(got_ids) != set(self.model.edges):
            self.fail(f"the tree has edges {sorted(got_ids)}, the model "
                      f"{sorted(self.model.edges)}")
        for s in shares:
            e = self.model.edges[s["id"]]
            if (s["kind"], s["parent"], s["role"], s["holder"] if e.kind == "grant" else None,
                    s["revokedAt"] is not None) != (e.kind, e.parent, e.role, e.holder if
                                                    e.kind == "grant" else None, e.revoked):
                self.fail(f"edge {s} is not the model's {e!r}")
            eff = s["effective"]
            got = (frozenset(eff["permissions"]), eff["readOnly"]) if eff["active"] else None
            if not eff["active"] and eff["permissions"]:
                self.fail(f"inactive edge #{e.id} grants {eff['permissions']}")

            def want(t, e=e):
                g = self.model.grant(e.id, t)
                return None if g is None else (g[0], g[1])

            self.expect(got, self.outcomes(want, before, after), f"edge #{e.id} grants")

    def check_access(self, user):
        before = time.time()
        access = self.w.access(self.grain, user)
        after = time.time()

        def want(t):
            h = self.model.held(user, t)
            return None if h is None else (h[1][0], h[1][1], h[0])

        got = None if access is None else (frozenset(access["permissions"]), access["readOnly"],
                                           access["via"])
        if access is not None and access.get("owner") is not False:
            self.fail(f"{user}'s access {access} says owner")
        self.expect(got, self.outcomes(want, before, after), f"{user}'s access")

    def check_visibility(self, user):
        r = self.w.clients[user].get(f"/api/grains/{self.grain}/shares")
        now = time.time()
        if self.model.held(user, now - 0.5) is None and self.model.held(user, now + 0.5) is None:
            self.expect(r.status_code, {404}, f"{user}'s view of the tree")
            return
        if self.model.held(user, now - 0.5) is None or self.model.held(user, now + 0.5) is None:
            return
        self.expect(r.status_code, {200}, f"{user}'s view of the tree")
        got = {s["id"] for s in r.json()["shares"]}
        self.expect(got, [self.model.visible(user)], f"{user}'s view of the tree")

    # ---- the run

    def run(self, steps):
        ops = [(self.op_open, 26), (lambda: self.op_share("shares"), 22),
               (lambda: self.op_share("tokens"), 6), (self.op_api_open, 6),
               (lambda: self.op_change(False), 14), (lambda: self.op_change(True), 8),
               (self.op_sleep, 1)]
        names = ["open", "share", "token", "api-open", "patch", "revoke", "sleep"]
        for self.step in range(1, steps + 1):
            i = self.rng.choices(range(len(ops)), weights=[w for _, w in ops])[0]
            self.counts[names[i]] = self.counts.get(names[i], 0) + 1
            ops[i][0]()
            self.check_tree()
            for user in USERS:
                self.check_access(user)
            if self.step % 10 == 0:
                for s in list(self.sessions):
                    if s in self.sessions:
                        self.check_session(s, full=self.step % 20 == 0)
                for tid in list(self.tokens):
                    self.check_token(tid)
                for user in USERS:
                    self.check_visibility(user)

    def op_sleep(self):
        pause = self.rng.uniform(1.0, 2.0)
        self.note(f"sleep {pause:.2f} s")
        time.sleep(pause)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    daemon = start_daemon()
    try:
        w = World(daemon, net=60)
        packager = Packager(tmp_path_factory.mktemp("model-packages"))
        w.app = w.install(grain_test_manifest_spk(packager, PERMISSIONS, MANIFEST_ROLES))
        yield w
    finally:
        stop_daemon(daemon)


def api_served(world):
    return world.api(None).status_code == 401


def test_the_api_host_is_served(world):
    """The model checks API tokens through the api. host only when it is
    served; this says whether it is."""
    assert api_served(world), "the api. host is not served: the model checks no API token"


def test_sharing_matches_the_model(world):
    print(f"seed {SEED}, {STEPS} steps (GRANARY_SHARING_SEED, GRANARY_SHARING_STEPS)",
          file=sys.stderr)
    grain = world.new_grain(world.app, title="Model")
    run = Run(world, grain, random.Random(SEED), api_served(world))
    started = time.monotonic()
    try:
        run.run(STEPS)
    finally:
        kinds = {}
        for e in run.model.edges.values():
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        print(f"{run.step} steps in {time.monotonic() - started:.1f} s; operations "
              f"{run.counts}; edges {kinds}, revoked "
              f"{sum(e.revoked for e in run.model.edges.values())}; sessions tracked "
              f"{len(run.sessions)}", file=sys.stderr)
        for outcome, n in sorted(run.outcomes_seen.items()):
            print(f"  {outcome}: {n}", file=sys.stderr)
