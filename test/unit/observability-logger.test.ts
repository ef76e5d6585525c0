import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';

function capture(level: string) {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  const logger = createLogger({ level, destination: stream });
  const lines = async (): Promise<Array<Record<string, unknown>>> => {
    await new Promise((r) => setImmediate(r));
    return chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  return { logger, lines, raw: () => chunks.join('') };
}

describe('createLogger', () => {
  it('writes one JSON object per line with level name, time and message', async () => {
    const { logger, lines } = capture('info');
    logger.info({ route: 'end-3', status: 200 }, 'request');
    logger.warn({ upstream: 'docker.io' }, 'slow');
    const [a, b] = await lines();
    assert.equal(a?.level, 'info');
    assert.equal(a?.msg, 'request');
    assert.equal(a?.route, 'end-3');
    assert.ok(!Number.isNaN(Date.parse(String(a?.time))));
    assert.equal(b?.level, 'warn');
  });

  it('drops lines below the configured level', async () => {
    const { logger, lines } = capture('warn');
    logger.debug({}, 'd');
    logger.info({}, 'i');
    logger.error({}, 'e');
    assert.deepEqual((await lines()).map((l) => l.msg), ['e']);
  });

  it('child loggers carry their bindings', async () => {
    const { logger, lines } = capture('debug');
    logger.child({ component: 'upstream', upstream: 'ghcr.io' }).child({ attempt: 2 }).debug({}, 'retry');
    const [l] = await lines();
    assert.equal(l?.component, 'upstream');
    assert.equal(l?.upstream, 'ghcr.io');
    assert.equal(l?.attempt, 2);
  });

  it('serialises errors with message and stack', async () => {
    const { logger, lines } = capture('info');
    logger.error({ err: new Error('boom') }, 'failed');
    const [l] = await lines();
    const err = l?.err as { message?: string; stack?: string };
    assert.equal(err.message, 'boom');
    assert.match(String(err.stack), /Error: boom/);
  });

  it('never writes credentials, tokens or cookies', async () => {
    const { logger, raw } = capture('info');
    logger.info({
      authorization: 'Bearer SECRET-1',
      headers: { authorization: 'Basic SECRET-2', cookie: 'session=SECRET-3' },
      req: { headers: { authorization: 'Bearer SECRET-4', cookie: 'SECRET-5', 'set-cookie': 'SECRET-6' } },
      password: 'SECRET-7',
      token: 'SECRET-8',
      credentials: { username: 'me', password: 'SECRET-9' },
      upstream: { name: 'docker.io', credentials: { password: 'SECRET-10' }, token: 'SECRET-11' },
      config: { upstreams: [{ name: 'ghcr.io', credentials: { token: 'SECRET-12' } }], redis: { password: 'SECRET-13' } },
    }, 'everything');
    logger.child({ auth: { token: 'SECRET-14' } }).info({}, 'child');
    await new Promise((r) => setImmediate(r));
    const out = raw();
    assert.match(out, /everything/);
    assert.match(out, /\[Redacted\]/);
    assert.doesNotMatch(out, /SECRET-/);
    // what is not a secret stays readable
    assert.match(out, /"name":"docker\.io"/);
  });

  it('redacts capitalised header names and token fields', async () => {
    const { logger, raw } = capture('info');
    logger.info({ Authorization: 'Bearer SECRET-1', headers: { Authorization: 'Basic SECRET-2' }, body: { access_token: 'SECRET-3', refresh_token: 'SECRET-4' } }, 'caps');
    await new Promise((r) => setImmediate(r));
    assert.match(raw(), /caps/);
    assert.doesNotMatch(raw(), /SECRET-/);
  });

  it('redacts secret fields at any depth and under any capitalisation, and nothing else', async () => {
    const { logger, lines, raw } = capture('info');
    logger.info(
      {
        a: { b: { c: { Password: 'SECRET-1', 'Proxy-Authorization': 'Basic SECRET-2' } } },
        res: { headers: { 'Set-Cookie': ['SECRET-3'], Cookie: 'SECRET-4' } },
        list: [{ TOKEN: 'SECRET-5' }, { credentials: { username: 'me' } }],
        tokenFile: '/run/secrets/hub',
        passwordFile: '/run/secrets/redis',
        tokens: 3,
      },
      'deep',
    );
    await new Promise((r) => setImmediate(r));
    assert.doesNotMatch(raw(), /SECRET-/);
    const [l] = await lines();
    assert.equal((l?.list as Array<Record<string, unknown>>)[1]?.credentials, '[Redacted]');
    assert.equal(l?.tokenFile, '/run/secrets/hub');
    assert.equal(l?.passwordFile, '/run/secrets/redis');
    assert.equal(l?.tokens, 3);
  });

  it('scrubs credentials quoted inside messages, errors and bindings, and keeps the rest readable', async () => {
    const { logger, lines, raw } = capture('debug');
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2lnbmF0dXJlMQ';
    logger.error({ err: new Error(`GET https://cdn.example/blob?X-Amz-Signature=SECRETsig1&X-Amz-Date=20260101 failed`) }, 'blob fetch failed');
    logger.warn({ reason: 'sent Authorization: Basic U0VDUkVULTp1c2VyOnBhc3M=' }, `token ${jwt} rejected`);
    logger.child({ url: 'https://me:SECRETpass@registry.example/v2/' }).info({ redis: 'redis://:SECRETredis@10.0.0.1:6379' }, 'connect');
    logger.info({ reason: 'upstream basic refused our credentials (manifest: HTTP 401)', challenge: 'Bearer realm="https://auth.example/token",service="x"' }, 'prose');
    const out = raw();
    assert.doesNotMatch(out, /SECRET|U0VDUkVU|eyJzdWIi/);
    const ls = await lines();
    assert.match(String((ls[0]?.err as { message: string }).message), /X-Amz-Date=20260101 failed/);
    assert.match(String((ls[0]?.err as { stack: string }).stack), /^Error: GET https:\/\/cdn\.example\/blob\?X-Amz-Signature=\[Redacted\]/);
    assert.equal(ls[2]?.url, 'https://[Redacted]@registry.example/v2/');
    assert.equal(ls[3]?.reason, 'upstream basic refused our credentials (manifest: HTTP 401)');
    assert.equal(ls[3]?.challenge, 'Bearer realm="https://auth.example/token",service="x"');
  });
});
