#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ConfigError, ConfigFileError, loadConfig, type ConfigOverride, type WharfConfig } from './config/index.js';
import { CliError, resolveTargets } from './cli/common.js';
import { registerEvents } from './cli/events.js';
import { registerGc } from './cli/gc.js';
import { registerHealthcheck } from './cli/healthcheck.js';
import { registerLs } from './cli/ls.js';
import { registerPurge } from './cli/purge.js';
import { registerStats } from './cli/stats.js';
import { registerVerify } from './cli/verify.js';
import { registerWarm } from './cli/warm.js';

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  exit: (code: number) => void;
  serve: (config: WharfConfig) => Promise<void>;
  /** relative paths in the configuration resolve against this; default process.cwd() */
  cwd?: string;
}

export interface Cli {
  program: Command;
  /** Runs with the user's arguments (argv without node and the script); every exit goes through io.exit. */
  run(args: string[]): Promise<void>;
}

function version(): string {
  // ../package.json from both src/cli.ts and dist/cli.js
  const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
  return pkg.version;
}

export function buildCli(io: CliIo): Cli {
  const program = new Command('wharf')
    .description('A pull-through caching registry mirror for Docker/OCI images')
    .version(version(), '-V, --version')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .exitOverride();

  program
    .command('serve')
    .description('run the registry mirror')
    .option('-c, --config <file>', 'YAML configuration file (default: $WHARF_CONFIG)')
    .option('--listen <addr>', 'host:port of the registry API (overrides listen / WHARF_LISTEN)')
    .option('--data-dir <dir>', 'data directory (overrides dataDir / WHARF_DATA_DIR)')
    .action(async (opts: { config?: string; listen?: string; dataDir?: string }) => {
      const overrides: ConfigOverride[] = [];
      if (opts.listen !== undefined) overrides.push({ path: 'listen', value: opts.listen, source: '--listen' });
      if (opts.dataDir !== undefined) overrides.push({ path: 'dataDir', value: opts.dataDir, source: '--data-dir' });
      let config: WharfConfig;
      try {
        config = await loadConfig({
          ...(opts.config !== undefined ? { file: opts.config } : {}),
          env: io.env,
          overrides,
          ...(io.cwd !== undefined ? { cwd: io.cwd } : {}),
        });
      } catch (e) {
        if (e instanceof ConfigError) {
          io.stderr.write(`wharf: invalid configuration:\n${e.problems.map((p) => `  ${p}\n`).join('')}`);
        } else if (e instanceof ConfigFileError) {
          io.stderr.write(`wharf: ${e.message}\n`);
        } else {
          throw e;
        }
        io.exit(2);
        return;
      }
      await io.serve(config);
    });

  // Operator commands: through a running wharf's admin API (--url), some also offline (--data-dir).
  for (const register of [registerGc, registerLs, registerStats, registerPurge, registerVerify, registerWarm, registerHealthcheck, registerEvents]) register(program, io);
  resolveTargets(program, io);

  return {
    program,
    async run(args) {
      try {
        await program.parseAsync(args, { from: 'user' });
      } catch (e) {
        if (e instanceof CommanderError) {
          // commander has already printed help, the version or its error message
          io.exit(e.exitCode);
          return;
        }
        io.stderr.write(`wharf: ${e instanceof Error ? e.message : String(e)}\n`);
        io.exit(e instanceof CliError ? e.exitCode : 1);
      }
    },
  };
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  await buildCli({
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    exit: (code) => process.exit(code),
    // Loaded on demand: --help and --version need none of the server's dependencies.
    // Exit explicitly once drained: pooled upstream sockets must not keep a stopped server alive.
    serve: async (config) => {
      await (await import('./main.js')).serve(config);
      process.exit(0);
    },
  }).run(process.argv.slice(2));
}
