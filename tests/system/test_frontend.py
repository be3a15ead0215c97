#!/usr/bin/env python3
"""System tests of configstream-frontend and config-stream-client.

Real processes on loopback: the broker, the resolver and two frontends on a
temporary run directory and a free port; clients are config-stream-client
and a Node client (@grpc/grpc-js) that shares no code with the server.

usage: test_frontend.py BUILD_DIR NODE_DIR CASE
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD, NODE_DIR, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
BIN = {
    'broker': f'{BUILD}/src/broker/configstream-broker',
    'resolver': f'{BUILD}/src/resolver/configstream-resolver',
    'frontend': f'{BUILD}/src/frontend/configstream-frontend',
    'ctl': f'{BUILD}/src/tools/configstream-ctl',
    'dump': f'{BUILD}/src/tools/configstream-dump',
    'client': f'{BUILD}/src/tools/config-stream-client',
}
STREAM = '/datadog.api.v1.AgentSecure/StreamConfigEvents'
RAR_NEW = '/datadog.remoteagent.v1.RemoteAgent/'
RAR_OLD = '/datadog.api.v1.AgentSecure/'
HINT = ('remote agent must register with RAR before subscribing to '
        'config stream')


def fail(msg):
    print(f'FAIL: {msg}', file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    fail(f'timed out waiting for {what}')


class Group:
    """broker + resolver + N frontends on a temporary directory."""

    def __init__(self, frontends=2, registry=True, extra='',
                 idle_timeout='30s', frontend_first=False):
        self.tmp = tempfile.TemporaryDirectory(prefix='cs-frontend-')
        self.dir = self.tmp.name
        self.run = f'{self.dir}/run'
        os.makedirs(self.run)
        self.port = free_port()
        self.config = f'{self.dir}/datadog.yaml'
        self.base = (
            f'api_key: "0123456789abcdef"\n'
            f'run_path: {self.run}\n'
            f'cmd_host: 127.0.0.1\n'
            f'cmd_port: {self.port}\n'
            f'log_level: info\n'
            f'remote_agent_registry:\n'
            f'  enabled: {"true" if registry else "false"}\n'
            f'  idle_timeout: {idle_timeout}\n'
            f'{extra}')
        self.write_config('')
        self.procs = {}
        self.frontends = []
        if frontend_first:
            self.frontends.append(self.start('frontend', 'fe0'))
            wait_for(lambda: 'listening on' in self.log('fe0'), 10,
                     'fe0 to listen')
            self.cert = f'{self.run}/ipc_cert.pem'
            return
        self.start_rest(frontends)

    def start_rest(self, frontends):
        self.start('broker')
        wait_for(lambda: os.path.exists(f'{self.run}/configstream/shm'), 5,
                 'the broker')
        self.start('resolver')
        for i in range(len(self.frontends), frontends):
            self.frontends.append(self.start('frontend', f'fe{i}'))
        for name in self.frontends:
            wait_for(lambda: 'ready: serving' in self.log(name), 10,
                     f'{name} to be ready')
        self.token = open(f'{self.run}/auth_token').read().strip()
        self.cert = f'{self.run}/ipc_cert.pem'

    def write_config(self, more):
        tmp = self.config + '.tmp'
        with open(tmp, 'w') as f:
            f.write(self.base + more)
        os.rename(tmp, self.config)

    def start(self, role, name=None):
        name = name or role
        log = open(f'{self.dir}/{name}.log', 'w')
        self.procs[name] = subprocess.Popen(
            [BIN[role], '-c', self.config], stdout=log, stderr=log)
        return name

    def log(self, name):
        with open(f'{self.dir}/{name}.log') as f:
            return f.read()

    def pid(self, name):
        return self.procs[name].pid

    def ctl(self, *args, check_rc=True):
        r = subprocess.run([BIN['ctl'], '-c', self.config, *args],
                           capture_output=True, text=True, timeout=10)
        if check_rc and r.returncode != 0:
            fail(f'configstream-ctl {args}: {r.stderr}')
        return r.stdout

    def head(self):
        st = json.loads(self.ctl('--json', 'status'))
        return st.get('head') or st.get('head_seq')

    def client(self, *args, tls=True):
        transport = ['--cert-file', self.cert] if tls else ['--insecure']
        return subprocess.Popen(
            [BIN['client'], '--ipc-address', f'127.0.0.1:{self.port}',
             '--auth-token-file', f'{self.run}/auth_token',
             *transport, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def node(self, opts, background=False):
        base = {'address': f'127.0.0.1:{self.port}', 'cert': self.cert}
        base.update(opts)
        p = subprocess.Popen(
            ['node', '--no-deprecation', f'{NODE_DIR}/client.js',
             json.dumps(base)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if background:
            return p
        return node_result(p)

    def auth(self):
        return {'authorization': f'Bearer {self.token}'}

    def register(self, name='node-agent'):
        r = self.node({'path': RAR_NEW + 'RegisterRemoteAgent',
                       'metadata': self.auth(),
                       'request': {'pid': '1', 'flavor': 'test',
                                   'display_name': name,
                                   'api_endpoint_uri': 'unix:///x.sock'}})
        check(r['status']['code'] == 'OK', f'register: {r["status"]}')
        return r['response']['session_id']

    def stop(self):
        """Stop everything; a frontend must exit 0 on SIGTERM (under the
        sanitizers that includes freeing everything it allocated)."""
        bad = []
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                rc = p.wait(timeout=6)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            if name in self.frontends and rc != 0:
                bad.append(f'{name} exited {rc}: {self.log(name)[-2000:]}')
        self.tmp.cleanup()
        check(not bad, '; '.join(bad))


def node_result(p, timeout=30):
    out, err = p.communicate(timeout=timeout)
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    res = {'events': [], 'status': None, 'response': None, 'lines': lines}
    for x in lines:
        if 'event' in x:
            res['events'].append(x['event'])
        elif 'status' in x:
            res['status'] = x['status']
        elif 'response' in x:
            res['response'] = x['response']
    if res['status'] is None:
        fail(f'node client gave no status: {out} {err}')
    return res


def client_events(p, timeout=30):
    out, err = p.communicate(timeout=timeout)
    evs = [json.loads(x) for x in out.splitlines() if x.startswith('{')]
    return p.returncode, evs, err


def summary(evs):
    s = [e for e in evs if e['event'] == 'summary']
    check(len(s) == 1, f'one summary expected: {evs[-3:]}')
    return s[0]


def case_snapshot(g):
    """Snapshot first: origin datadog.yaml and every resolved setting."""
    p = g.client('--json', '--max-samples', '1', '--name', 'snap')
    rc, evs, err = client_events(p)
    check(rc == 0, f'client exit {rc}: {err}')
    snap = evs[0]
    check(snap['event'] == 'snapshot', f'first event: {snap}')
    check(snap['origin'] == 'datadog.yaml', f'origin: {snap}')

    r = subprocess.run([BIN['dump'], '-c', g.config, '--json', '--settings',
                        '--show-secrets'], capture_output=True, text=True,
                       check=True)
    stored = {}
    for line in r.stdout.splitlines():
        x = json.loads(line)
        if x.get('kind') == 'setting':
            stored[x['key']] = (x['source'], x['value'])
    check(snap['settings'] == len(stored),
          f'snapshot has {snap["settings"]} settings, store {len(stored)}')

    p = g.client('--dump-snapshot', '--show-secrets', '--name', 'dump')
    rc, evs, err = client_events(p)
    check(rc == 0, f'dump-snapshot exit {rc}: {err}')
    streamed = {e['key']: (e['source'], e['value']) for e in evs}
    diff = sorted(k for k in set(streamed) | set(stored)
                  if streamed.get(k) != stored.get(k))
    check(not diff, f'streamed snapshot differs from the store: {diff[:5]}')
    check(streamed['api_key'] == ('file', '0123456789abcdef'),
          f'api_key: {streamed.get("api_key")}')

    # A PEM file holding only the certificate serves as the root too.
    pem = open(g.cert).read()
    cert_only = f'{g.dir}/cert-only.pem'
    with open(cert_only, 'w') as f:
        f.write(pem[pem.index('-----BEGIN CERTIFICATE-----'):
                    pem.index('-----END CERTIFICATE-----') + 25] + '\n')
    g.cert, full = cert_only, g.cert
    p = g.client('--json', '--max-samples', '1', '--name', 'cert-only')
    g.cert = full
    rc, evs, err = client_events(p)
    check(rc == 0 and evs[0]['event'] == 'snapshot',
          f'cert-only root: {rc} {err}')


def case_snapshot_fresh(g):
    """Subscribers joining at the same head share one snapshot; one joining
    after a change gets the new head, never the snapshot built before."""
    def snapshot():
        p = g.client('--dump-snapshot', '--name', 'fresh')
        rc, evs, err = client_events(p)
        check(rc == 0, f'dump-snapshot exit {rc}: {err}')
        return {e['key']: e['value'] for e in evs}

    first, again = snapshot(), snapshot()
    check(first == again, 'two snapshots at one head differ')
    check('fresh.key' not in first, 'fresh.key before it was set')
    for value in ('one', 'two'):
        g.ctl('set', 'fresh.key', value)
        got = snapshot()
        check(got.get('fresh.key') == value,
              f'snapshot after set {value}: {got.get("fresh.key")}')
    g.ctl('unset', 'fresh.key')
    check('fresh.key' not in snapshot(), 'snapshot after unset')

    # A resolver restarted on another file changes the origin, not the
    # head: the next snapshot must carry the new origin all the same.
    def origin():
        p = g.client('--json', '--max-samples', '1', '--name', 'origin')
        rc, evs, err = client_events(p)
        check(rc == 0, f'client exit {rc}: {err}')
        return evs[0]['seq'], evs[0]['origin']

    seq, was = origin()
    check(was == 'datadog.yaml', f'origin {was}')
    shutil.copy(g.config, f'{g.dir}/other.yaml')
    g.procs['resolver'].terminate()
    g.procs['resolver'].wait(10)
    log = open(f'{g.dir}/resolver2.log', 'w')
    g.procs['resolver'] = subprocess.Popen(
        [BIN['resolver'], '-c', f'{g.dir}/other.yaml'], stdout=log,
        stderr=log)
    def on_other():
        r = subprocess.run([BIN['dump'], '-c', g.config, '--json',
                            '--meta'], capture_output=True, text=True)
        return '"origin":"other.yaml"' in r.stdout.replace(' ', '')

    wait_for(on_other, 10, 'the resolver on other.yaml')
    now = origin()
    check(now == (seq, 'other.yaml'), f'after the restart: {now}')


def case_updates(g):
    """Typed updates with consecutive ids; an unset carries unset_source."""
    head = g.head()
    p = g.client('--json', '--duration', '4', '--name', 'typed')
    time.sleep(1)
    values = [('t.string', '"hello"', 'hello'), ('t.int', '42', 42),
              ('t.float', '2.5', 2.5), ('t.bool', 'true', True),
              ('t.list', '[1, "a", false]', [1, 'a', False]),
              ('t.map', '{a: 1, b: [x]}', {'a': 1, 'b': ['x']}),
              ('t.null', 'null', None)]
    for key, yaml, _ in values:
        g.ctl('set', key, yaml)
    g.ctl('unset', 't.int', '--source', 'agent-runtime')
    g.ctl('set', 'api_key', 'abcdef0123456789')
    rc, evs, err = client_events(p)
    check(rc == 0, f'client exit {rc}: {err}')
    check(evs[0]['event'] == 'snapshot' and evs[0]['seq'] == head,
          f'snapshot at head {head}: {evs[0]}')
    ups = [e for e in evs if e['event'] == 'update']
    check(len(ups) == len(values) + 2, f'updates: {ups}')
    secret = ups.pop()
    check(secret['key'] == 'api_key' and secret['value'] == '********',
          f'a secret printed in clear: {secret}')
    for i, (e, (key, _, want)) in enumerate(zip(ups, values)):
        check(e['seq'] == head + 1 + i, f'id of {key}: {e}')
        check(e['key'] == key and e['value'] == want
              and e['source'] == 'agent-runtime' and e['unset_source'] == '',
              f'{key}: want {want!r}, got {e}')
        check(type(e['value']) is type(want), f'{key} type: {e}')
    last = ups[-1]
    check(last['key'] == 't.int' and last['unset_source'] == 'agent-runtime'
          and last['value'] is None and last['source'] == '',
          f'unset: {last}')
    check(summary(evs)['violations'] == 0, 'ordering violations')


def case_fanout(g):
    """Three subscribers on different connections see the same events."""
    # Each stops after the snapshot and 20 updates (or 30 s): a slow
    # machine making the sets slowly must not end a stream early.
    ps = [g.client('--json', '--max-samples', '21', '--duration', '30',
                   '--name', f'fan{i}')
          for i in range(3)]
    time.sleep(1)
    for i in range(20):
        g.ctl('set', f'fan.k{i % 4}', str(i))
    seqs = []
    for p in ps:
        rc, evs, err = client_events(p)
        check(rc == 0, f'client exit {rc}: {err}')
        ups = [(e['seq'], e['key'], e['value']) for e in evs
               if e['event'] == 'update']
        snaps = [e['seq'] for e in evs if e['event'] == 'snapshot']
        check(len(ups) == 20, f'20 updates expected, got {len(ups)} '
              f'(snapshots at {snaps}, updates {[u[0] for u in ups]})')
        seqs.append(ups)
    check(seqs[0] == seqs[1] == seqs[2], 'subscribers disagree')


def expect(r, code, details, what):
    st = r['status']
    check(st['code'] == code and (details is None
                                  or st['details'] == details),
          f'{what}: want {code} {details!r}, got {st}')


def case_errors(g):
    """Every row of the error table, seen by a client sharing no code."""
    sid = g.register()
    stream = {'path': STREAM, 'stream': True, 'request': {'name': 'errs'},
              'timeoutMs': 5000}

    def s(md, **kw):
        o = dict(stream, metadata=md)
        o.update(kw)
        return g.node(o)

    tok = g.token
    expect(s({'session_id': sid}), 'UNAUTHENTICATED',
           'Request unauthenticated with Bearer', 'no authorization')
    expect(s({'authorization': f'Basic {tok}', 'session_id': sid}),
           'UNAUTHENTICATED', 'Request unauthenticated with Bearer',
           'scheme not Bearer')
    expect(s({'authorization': 'Bearer', 'session_id': sid}),
           'UNAUTHENTICATED', 'Bad authorization string', 'no space')
    expect(s({'authorization': 'Bearer ' + 'f' * 64, 'session_id': sid}),
           'UNAUTHENTICATED', 'invalid auth token: invalid session token',
           'wrong token')
    expect(s(g.auth()), 'UNAUTHENTICATED',
           f'session_id required in metadata: {HINT}', 'no session_id')
    expect(s(dict(g.auth(), session_id='')), 'UNAUTHENTICATED',
           f'session_id cannot be empty: {HINT}', 'empty session_id')
    bogus = '00000000-0000-4000-8000-000000000000'
    expect(s(dict(g.auth(), session_id=bogus)), 'PERMISSION_DENIED',
           f"session_id '{bogus}' not found: {HINT}", 'unknown session')
    for svc in (RAR_NEW, RAR_OLD):
        r = g.node({'path': svc + 'RefreshRemoteAgent',
                    'metadata': g.auth(), 'request': {'session_id': bogus}})
        expect(r, 'NOT_FOUND', 'no remote agent found with session ID',
               f'refresh unknown on {svc}')
        r = g.node({'path': svc + 'RegisterRemoteAgent',
                    'metadata': g.auth(),
                    'request': {'pid': '1', 'display_name': '  ',
                                'api_endpoint_uri': 'unix:///x.sock'}})
        expect(r, 'INVALID_ARGUMENT', None, 'blank display name')
        check('display' in r['status']['details'],
              f'blank display name message: {r["status"]}')
        r = g.node({'path': svc + 'RefreshRemoteAgent',
                    'metadata': {'authorization': 'Bearer nope'},
                    'request': {'session_id': sid}})
        expect(r, 'UNAUTHENTICATED',
               'invalid auth token: invalid session token',
               f'refresh with a wrong token on {svc}')

    ok = dict(g.auth(), session_id=sid)
    expect(s(ok, request={'name': ''}), 'INVALID_ARGUMENT', None,
           'empty name')
    expect(s(ok, request={'name': 'x' * 257}), 'INVALID_ARGUMENT', None,
           'name over 256 bytes')
    expect(s(ok, request={'name': 'a\nb'}), 'INVALID_ARGUMENT', None,
           'unprintable name')
    expect(s(ok, rawRequest='0aff'), 'INVALID_ARGUMENT', None,
           'request that does not decode')
    expect(s(ok, request={'name': 'x' * 100000}), 'RESOURCE_EXHAUSTED',
           None, 'request over the 64 KiB limit')
    r = g.node({'path': '/datadog.api.v1.AgentSecure/Nope',
                'metadata': ok, 'request': {}})
    expect(r, 'UNIMPLEMENTED', None, 'unknown method')
    r = g.node({'path': '/grpc.health.v1.Health/Check', 'request': {}})
    check(r['response'] == {'status': 'SERVING'}, f'health: {r}')
    r = s(ok, maxEvents=1)
    check(r['events'][0].get('snapshot') is not None, 'valid stream')


def case_registry_disabled(g):
    """Registry disabled: registry calls and the stream are UNIMPLEMENTED."""
    ok = dict(g.auth(), session_id='00000000-0000-4000-8000-000000000000')
    msg = 'remote agent registry not enabled'
    expect(g.node({'path': STREAM, 'stream': True, 'metadata': ok,
                   'request': {'name': 'x'}}), 'UNIMPLEMENTED', msg,
           'stream')
    for svc in (RAR_NEW, RAR_OLD):
        expect(g.node({'path': svc + 'RegisterRemoteAgent',
                       'metadata': g.auth(),
                       'request': {'display_name': 'x'}}),
               'UNIMPLEMENTED', msg, f'register on {svc}')
        expect(g.node({'path': svc + 'RefreshRemoteAgent',
                       'metadata': g.auth(),
                       'request': {'session_id': 'x'}}),
               'UNIMPLEMENTED', msg, f'refresh on {svc}')


def case_revoke(g):
    """Revoking a session ends its stream with PERMISSION_DENIED."""
    sid = g.register('revoked-agent')
    p = g.node({'path': STREAM, 'stream': True,
                'metadata': dict(g.auth(), session_id=sid),
                'request': {'name': 'revokee'}, 'timeoutMs': 10000},
               background=True)
    wait_for(lambda: any("'revokee' joining" in g.log(f)
                         for f in g.frontends), 5, 'the stream')
    t0 = time.monotonic()
    g.ctl('revoke', sid)
    r = node_result(p)
    took = time.monotonic() - t0
    expect(r, 'PERMISSION_DENIED', f"session_id '{sid}' not found: {HINT}",
           'revoked stream')
    check(took < 1.5, f'stream ended {took:.2f}s after the revoke')
    check(r['events'] and 'snapshot' in r['events'][0], 'snapshot first')

    # config-stream-client registers again and goes on streaming.
    p = g.client('--json', '--name', 'c-revokee')
    wait_for(lambda: any("'c-revokee' joining" in g.log(f)
                         for f in g.frontends), 10, 'the client stream')

    def session_of(name):
        for line in g.ctl('--json', 'sessions').splitlines():
            x = json.loads(line)
            if x.get('display_name') == name:
                return x['id']
        return None
    old = session_of('c-revokee')
    g.ctl('revoke', old)
    wait_for(lambda: session_of('c-revokee') not in (None, old), 5,
             'the client to register again')
    time.sleep(0.5)
    g.ctl('set', 'after.revoke', '1')
    head = g.head()
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    rc, evs, err = client_events(p)
    check(rc == 0, f'client exit {rc}: {err}')
    check(summary(evs)['reconnects'] >= 1, 'client did not reconnect')
    last = [e for e in evs if e['event'] in ('update', 'snapshot')][-1]
    check(last['seq'] == head, f'client ended at {last}, head {head}')


def case_revoke_stuck(g):
    """A stream whose reader stopped, with a send stuck on flow control,
    still ends within a second of its session's revocation."""
    sid = g.register('stuck-agent')
    p = g.node({'path': STREAM, 'stream': True,
                'metadata': dict(g.auth(), session_id=sid),
                'request': {'name': 'stuck'}, 'pauseAfter': 1},
               background=True)
    wait_for(lambda: any("'stuck' joining" in g.log(f)
                         for f in g.frontends), 10, 'the stream')
    for r in range(40):
        g.write_config('burst:\n' + ''.join(f'  k{k}: {r * 50 + k}\n'
                                            for k in range(50)))
        g.ctl('reload')
    wait_for(lambda: any("Dropping config update for subscriber 'stuck'"
                         in g.log(f) for f in g.frontends), 10,
             'the stuck stream to overflow')
    g.ctl('revoke', sid)
    # Within a second, plus slack for a loaded test machine.
    wait_for(lambda: any("subscriber 'stuck' left" in g.log(f)
                         for f in g.frontends), 1.5,
             'the stuck stream to end')
    p.send_signal(signal.SIGUSR1)
    r = node_result(p)
    expect(r, 'PERMISSION_DENIED', f"session_id '{sid}' not found: {HINT}",
           'revoked stuck stream')


def case_changelog_gap(g):
    """A subscriber whose position fell off the retained changelog (one
    reload of 30 changes, 10 retained) is resynced with a snapshot."""
    p = g.client('--json', '--name', 'gap')
    wait_for(lambda: any("'gap' joining" in g.log(f)
                         for f in g.frontends), 10, 'the stream')
    g.write_config('gap:\n' + ''.join(f'  k{k}: {k}\n' for k in range(30)))
    g.ctl('reload')
    head = g.head()
    g.ctl('set', 'after.gap', '1')
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    rc, evs, err = client_events(p)
    check(rc == 0, f'client exit {rc}: {err}')
    kinds = [(e['event'], e.get('seq')) for e in evs
             if e['event'] in ('snapshot', 'update')]
    check(kinds[-2:] == [('snapshot', head), ('update', head + 1)],
          f'events after the gap: {kinds[-3:]}')
    check(any("Discontinuity detected for subscriber 'gap'" in g.log(f)
              for f in g.frontends), 'no discontinuity logged')


def case_wire_wrap(g):
    """Past INT32_MAX the stream goes on with a snapshot; ids before and
    after it are consecutive on the wire."""
    g.procs['resolver'].send_signal(signal.SIGTERM)
    check(g.procs['resolver'].wait(timeout=10) == 0, 'resolver exit')
    top = 2 ** 31 - 1
    subprocess.run([f'{BUILD}/tests/frontend_store_head',
                    f'{g.run}/configstream/store', str(top - 2)],
                   check=True, timeout=10)
    g.start('resolver')
    wait_for(lambda: 'ready' in g.log('resolver'), 10,
             'the resolver to restart')
    g.ctl('set', 'wrap.k', '0')
    p = g.client('--json', '--name', 'wrap')
    wait_for(lambda: any("'wrap' joining" in g.log(f)
                         for f in g.frontends), 10, 'the stream')
    for i in range(1, 4):
        g.ctl('set', 'wrap.k', str(i))
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    rc, evs, err = client_events(p)
    check(rc == 0, f'client exit {rc}: {err}')
    got = [(e['event'], e['seq']) for e in evs
           if e['event'] in ('snapshot', 'update')]
    check(got == [('snapshot', top - 1), ('update', top),
                  ('snapshot', 1), ('update', 2)], f'events: {got}')
    check(summary(evs)['violations'] == 0, 'ordering violations')


def rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        m = re.search(r'VmRSS:\s+(\d+)', f.read())
    return int(m.group(1))


def worker_stats(g):
    """Sum of the frontends' telemetry blocks in the segment (layout of
    src/common/shm_layout.h, version 1; blocks 64-byte aligned as
    src/common/shm.c places them)."""
    import struct
    with open(f'{g.run}/configstream/shm', 'rb') as f:
        data = f.read()
    magic, version, header_size = struct.unpack_from('<QII', data, 0)
    check(magic == 0x314d48534d524343 and version == 1,
          f'segment layout {version}: update worker_stats()')
    workers = struct.unpack_from('<I', data, 28)[0]

    def align(n):
        return (n + 63) & ~63
    pids = {g.pid(f) for f in g.frontends}
    names = ('subscribers', 'snapshots_sent', 'updates_sent',
             'discontinuities', 'dropped_updates')
    total = dict.fromkeys(names, 0)
    for i in range(workers):
        off = align(align(header_size) + 6 * 8) + i * 48
        owner = struct.unpack_from('<i', data, off)[0]
        if owner in pids:
            for name, v in zip(names, struct.unpack_from('<5Q', data,
                                                          off + 8)):
                total[name] += v
    return total


RSS_GROWTH_BOUND_KB = 32 * 1024
SETTLE_S = 5


def case_slow_consumer(g):
    """A reader that stops while 10 000 updates flow costs bounded memory;
    others keep receiving; on resume it gets a snapshot, then consecutive
    updates."""
    sid = g.register('slow-agent')
    before = {f: rss_kb(g.pid(f)) for f in g.frontends}
    slow = g.node({'path': STREAM, 'stream': True,
                   'metadata': dict(g.auth(), session_id=sid),
                   'request': {'name': 'slow'}, 'pauseAfter': 1},
                  background=True)
    fast = g.client('--json', '--name', 'fast')
    for name in ('slow', 'fast'):
        wait_for(lambda: any(f"'{name}' joining" in g.log(f)
                             for f in g.frontends), 10, f'{name} to join')
    time.sleep(0.5)

    # 10 000 changes: 200 reloads of 50 keys each, while slow reads nothing.
    peak = dict(before)
    for r in range(200):
        body = 'burst:\n' + ''.join(f'  k{k}: {r * 50 + k}\n'
                                    for k in range(50))
        g.write_config(body)
        g.ctl('reload')
        if r % 20 == 0:
            for f in g.frontends:
                peak[f] = max(peak[f], rss_kb(g.pid(f)))
    head = g.head()
    for f in g.frontends:
        peak[f] = max(peak[f], rss_kb(g.pid(f)))
        grew = peak[f] - before[f]
        print(f'{f}: rss {before[f]} kB -> peak {peak[f]} kB')
        check(grew < RSS_GROWTH_BOUND_KB,
              f'{f} grew {grew} kB, bound {RSS_GROWTH_BOUND_KB} kB')

    st = worker_stats(g)
    check(st['subscribers'] == 2, f'subscribers gauge: {st}')
    check(st['dropped_updates'] > 0, f'dropped_updates: {st}')

    # Resume the slow reader; give both time to reach the head.
    slow.send_signal(signal.SIGUSR1)
    time.sleep(SETTLE_S)
    slow.send_signal(signal.SIGTERM)
    fast.send_signal(signal.SIGTERM)

    rc, evs, err = client_events(fast)
    check(rc == 0, f'fast client exit {rc}: {err}')
    last = [e for e in evs if e['event'] in ('update', 'snapshot')][-1]
    check(last['seq'] == head, f'fast subscriber ended at {last["seq"]}, '
          f'head {head}')
    check(summary(evs)['violations'] == 0, 'fast subscriber violations')

    r = node_result(slow)
    evs = r['events']
    check(len(evs) >= 2, f'slow subscriber got {len(evs)} events')
    snaps = [i for i, e in enumerate(evs) if e.get('snapshot')]
    check(len(snaps) >= 2, 'no resync snapshot after the pause')
    prev = evs[snaps[1]]['snapshot']['sequence_id']
    for e in evs[snaps[1] + 1:]:
        if e.get('snapshot'):
            prev = e['snapshot']['sequence_id']
            continue
        seq = e['update']['sequence_id']
        check(seq == prev + 1, f'after resync: {seq} follows {prev}')
        prev = seq
    check(prev == head, f'slow subscriber ended at {prev}, head {head}')
    st = worker_stats(g)
    ups = sum(1 for e in evs if e.get('update'))
    check(st['subscribers'] == 0, f'subscribers gauge after: {st}')
    check(st['discontinuities'] >= 1 and st['snapshots_sent'] >= 3,
          f'resync counters: {st}')
    check(st['updates_sent'] >= ups, f'updates_sent: {st}')
    logs = ''.join(g.log(f) for f in g.frontends)
    check("Dropping config update for subscriber 'slow'" in logs,
          'no drop logged')
    check("Discontinuity detected for subscriber 'slow'" in logs,
          'no discontinuity logged')


def case_sigterm(g):
    """SIGTERM ends streams with UNAVAILABLE; clients reconnect to the
    other worker; the worker exits within 5 s."""
    sid = g.register('term-agent')
    nodes = [g.node({'path': STREAM, 'stream': True,
                     'metadata': dict(g.auth(), session_id=sid),
                     'request': {'name': f'n{i}'}, 'timeoutMs': 20000},
                    background=True) for i in range(4)]
    clients = [g.client('--json', '--duration', '8', '--name', f'c{i}')
               for i in range(4)]

    def joined(f):
        return g.log(f).count('joining the config stream')
    wait_for(lambda: sum(joined(f) for f in g.frontends) >= 8, 10,
             'eight subscribers')
    victim = max(g.frontends, key=joined)
    # A hangup is not a stop: the worker and its streams carry on.
    g.procs[victim].send_signal(signal.SIGHUP)
    time.sleep(0.3)
    check(g.procs[victim].poll() is None, f'{victim} died of SIGHUP')
    t0 = time.monotonic()
    g.procs[victim].send_signal(signal.SIGTERM)
    rc = g.procs[victim].wait(timeout=6)
    took = time.monotonic() - t0
    check(rc == 0, f'{victim} exited {rc}')
    check(took < 5, f'{victim} took {took:.1f}s to exit')

    time.sleep(1)
    g.ctl('set', 'after.term', '1')
    head = g.head()
    victim_log = g.log(victim)
    on_victim = 0
    for i, p in enumerate(nodes):
        if f"'n{i}' joining" in victim_log:
            r = node_result(p)
            expect(r, 'UNAVAILABLE', 'server shutting down',
                   f'n{i} on {victim}')
            on_victim += 1
        else:
            p.kill()
            p.wait()
    on_victim += sum(f"'c{i}' joining" in victim_log for i in range(4))
    check(on_victim >= 4, f'{on_victim} streams on {victim}')
    for i, p in enumerate(clients):
        rc, evs, err = client_events(p)
        check(rc == 0, f'c{i} exit {rc}: {err}')
        s = summary(evs)
        if f"'c{i}' joining" in victim_log:
            check(s['reconnects'] >= 1, f'c{i} did not reconnect')
        last = [e for e in evs if e['event'] in ('update', 'snapshot')][-1]
        check(last['seq'] == head, f'c{i} ended at {last["seq"]}, '
              f'head {head}')


def case_start_order(g):
    """A frontend started before the broker and the resolver answers
    NOT_SERVING and UNAVAILABLE, then serves once both are up."""
    token = open(f'{g.run}/auth_token').read().strip()
    r = g.node({'path': '/grpc.health.v1.Health/Check', 'request': {}})
    check(r['response'] == {'status': 'NOT_SERVING'}, f'health: {r}')
    r = g.node({'path': STREAM, 'stream': True,
                'metadata': {'authorization': f'Bearer {token}',
                             'session_id': 'x'},
                'request': {'name': 'early'}})
    expect(r, 'UNAVAILABLE', None, 'stream before the store exists')
    g.start_rest(1)
    r = g.node({'path': '/grpc.health.v1.Health/Check', 'request': {}})
    check(r['response'] == {'status': 'SERVING'}, f'health: {r}')
    p = g.client('--json', '--max-samples', '1', '--name', 'late')
    rc, evs, err = client_events(p)
    check(rc == 0 and evs[0]['event'] == 'snapshot', f'{rc} {evs} {err}')


def case_keepalive(g):
    """An open stream keeps its session alive past the idle timeout."""
    sid = g.register('kept-agent')
    r = g.node({'path': STREAM, 'stream': True,
                'metadata': dict(g.auth(), session_id=sid),
                'request': {'name': 'kept'}, 'timeoutMs': 6000})
    expect(r, 'DEADLINE_EXCEEDED', None, 'stream open for 6 s')
    r = g.node({'path': RAR_NEW + 'RefreshRemoteAgent',
                'metadata': g.auth(), 'request': {'session_id': sid}})
    expect(r, 'OK', None, 'refresh right after the stream')
    time.sleep(6)
    r = g.node({'path': RAR_NEW + 'RefreshRemoteAgent',
                'metadata': g.auth(), 'request': {'session_id': sid}})
    expect(r, 'NOT_FOUND', 'no remote agent found with session ID',
           'refresh after 6 s idle')


def case_stream_counts(g):
    """The broker counts each session's open streams, several per session
    and across both frontends, and the count drops once they close."""
    a = g.register('two-streams')
    b = g.register('one-stream')
    procs = [g.node({'path': STREAM, 'stream': True,
                     'metadata': dict(g.auth(), session_id=sid),
                     'request': {'name': f'counted-{i}'}, 'timeoutMs': 4000},
                    background=True)
             for i, sid in enumerate((a, a, b))]

    def counts():
        rows = [json.loads(x) for x in
                g.ctl('--json', 'sessions').splitlines() if x.strip()]
        return {r['id']: r['open_streams'] for r in rows}

    want = {a[:8]: 2, b[:8]: 1}
    wait_for(lambda: counts() == want, 10, f'open streams {want}')
    for p in procs:
        node_result(p)
    wait_for(lambda: counts() == {a[:8]: 0, b[:8]: 0}, 10,
             'open streams back to 0')


def case_broker_down(g):
    """Registry calls answer UNAVAILABLE while the broker is down; open
    streams keep streaming; a restarted broker serves again."""
    sid = g.register('before-crash')
    p = g.client('--json', '--name', 'through-crash')
    wait_for(lambda: any("'through-crash' joining" in g.log(f)
                         for f in g.frontends), 10, 'the stream')
    g.procs['broker'].kill()
    g.procs['broker'].wait()
    for svc in (RAR_NEW, RAR_OLD):
        r = g.node({'path': svc + 'RegisterRemoteAgent',
                    'metadata': g.auth(),
                    'request': {'display_name': 'x',
                                'api_endpoint_uri': 'unix:///x.sock'}})
        expect(r, 'UNAVAILABLE', None, f'register on {svc}, broker down')
        r = g.node({'path': svc + 'RefreshRemoteAgent',
                    'metadata': g.auth(), 'request': {'session_id': sid}})
        expect(r, 'UNAVAILABLE', None, f'refresh on {svc}, broker down')
    g.ctl('set', 'during.crash', '1')
    g.start('broker')
    wait_for(lambda: 'ready' in g.log('broker'), 10, 'the broker')
    r = g.node({'path': RAR_NEW + 'RefreshRemoteAgent',
                'metadata': g.auth(), 'request': {'session_id': sid}})
    expect(r, 'OK', None, 'refresh after the broker restarted')
    head = g.head()
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    rc, evs, err = client_events(p)
    check(rc == 0, f'client exit {rc}: {err}')
    last = [e for e in evs if e['event'] in ('update', 'snapshot')][-1]
    check(last['seq'] == head and last.get('key') == 'during.crash',
          f'stream through the crash ended at {last}')


def case_plaintext(g):
    """With TLS turned off the frontend serves plaintext, and only that."""
    p = g.client('--json', '--max-samples', '1', '--name', 'plain',
                 tls=False)
    rc, evs, err = client_events(p)
    check(rc == 0 and evs[0]['event'] == 'snapshot', f'{rc} {evs} {err}')
    r = g.node({'path': '/grpc.health.v1.Health/Check', 'request': {},
                'timeoutMs': 3000})
    check(r['status']['code'] != 'OK', f'tls client on plaintext: {r}')
    r = g.node({'path': '/grpc.health.v1.Health/Check', 'request': {},
                'cert': None})
    check(r['response'] == {'status': 'SERVING'}, f'health: {r}')


def case_bad_config():
    """A config the frontend cannot run with exits CS_EXIT_FATAL_CONFIG."""
    with tempfile.TemporaryDirectory(prefix='cs-frontend-') as d:
        for body in ('cmd_port: [\n', 'cmd_port: abc\n'):
            with open(f'{d}/datadog.yaml', 'w') as f:
                f.write(f'run_path: {d}\n' + body)
            r = subprocess.run([BIN['frontend'], '-c', f'{d}/datadog.yaml'],
                               capture_output=True, text=True, timeout=10)
            check(r.returncode == 78, f'{body!r}: exit {r.returncode}')
            check(re.search(r'datadog.yaml:\d+:\d+: ', r.stderr),
                  f'no file:line:column: {r.stderr}')


CASES = {
    'broker_down': (case_broker_down, {}),
    'wire_wrap': (case_wire_wrap, {}),
    'plaintext': (case_plaintext, {
        'extra': 'config_stream:\n  tls_enabled: false\n'}),
    'start_order': (case_start_order, {'frontend_first': True}),
    'keepalive': (case_keepalive, {'idle_timeout': '3s'}),
    'stream_counts': (case_stream_counts, {}),
    'snapshot_fresh': (case_snapshot_fresh, {'frontends': 1}),
    'snapshot': (case_snapshot, {}),
    'updates': (case_updates, {}),
    'fanout': (case_fanout, {}),
    'errors': (case_errors, {}),
    'registry_disabled': (case_registry_disabled, {'registry': False,
                                                   'frontends': 1}),
    'revoke': (case_revoke, {}),
    'revoke_stuck': (case_revoke_stuck, {}),
    'changelog_gap': (case_changelog_gap, {
        'extra': 'config_stream:\n  changelog_retention: 10\n'}),
    'slow_consumer': (case_slow_consumer, {
        'extra': 'config_stream:\n  changelog_retention: 100000\n'}),
    'sigterm': (case_sigterm, {}),
}


def main():
    if CASE == 'bad_config':
        case_bad_config()
        print(f'ok {CASE}')
        return
    fn, kw = CASES[CASE]
    if not os.path.isdir(f'{NODE_DIR}/node_modules/@grpc/grpc-js'):
        print(f'skip {CASE}: run npm ci in {NODE_DIR}', file=sys.stderr)
        sys.exit(77)
    g = Group(**kw)
    try:
        fn(g)
    except SystemExit:
        for name in g.procs:
            print(f'--- {name}.log (tail)', file=sys.stderr)
            print(g.log(name)[-3000:], file=sys.stderr)
        raise
    finally:
        g.stop()
    print(f'ok {CASE}')


main()
