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
});
