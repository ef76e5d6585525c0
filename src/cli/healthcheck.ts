import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Command } from 'commander';
import { CliError, type CommandIo } from './common.js';
import { duration } from './offline.js';
import { loadTarget } from './target.js';

/**
 * `wharf healthcheck`: GET /healthz on this machine's wharf, at the address and with the scheme its
 * configuration says (https once `tls` is set). For container HEALTHCHECKs: exit 0 healthy, 1 not.
 * The probe goes to loopback and carries nothing secret, so the certificate is not verified: its names are the
 * service's (not 127.0.0.1) and its CA need not be in this container's trust store.
 */
export function registerHealthcheck(program: Command, io: CommandIo): void {
  program
    .command('healthcheck')
    .description("probe this machine's wharf (/healthz) at the address and scheme of its configuration; exit 0 when healthy")
    .option('-c, --config <file>', "wharf's configuration (default: $WHARF_CONFIG)")
    .option('--timeout <duration>', 'give up after this long', '4s')
    .action(async (opts: { config?: string; timeout: string }) => {
      const timeoutMs = duration('--timeout', opts.timeout);
      const { url } = await loadTarget(opts.config ?? (io.env.WHARF_CONFIG || undefined), io.env);
      const status = await probe(`${url}/healthz`, timeoutMs).catch((e: Error) => {
        throw new CliError(`unhealthy: ${url}/healthz: ${e.message}`);
      });
      if (status !== 200) throw new CliError(`unhealthy: ${url}/healthz answered HTTP ${status}`);
      io.stdout.write(`healthy: ${url}/healthz\n`);
      io.exit(0);
    });
}

function probe(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = get(url, { method: 'GET', rejectUnauthorized: false, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}
