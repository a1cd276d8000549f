import { CliError } from './cli-error.ts';
import { ROLES, type Role } from '../jobs/context.ts';

function parseRoles(value: string): Set<Role> {
  if (value === 'all') return new Set(ROLES);
  const roles = new Set<Role>();
  for (const part of value.split(',')) {
    if (!(ROLES as readonly string[]).includes(part)) {
      throw new CliError(`--role: "${part}" is not a role (expected web, worker, scheduler, all, or a comma list)`, 2);
    }
    roles.add(part as Role);
  }
  return roles;
}

export async function startCommand(options: { role: string; port?: string }): Promise<void> {
  // A sweep allocates fast and keeps little: without this, a 100,000-device window's peak was mostly garbage.
  (await import('../runtime/heap-growth.ts')).limitHeapGrowth();
  const roles = parseRoles(options.role);
  const { loadConfig } = await import('../config.ts');
  const { createLogger } = await import('../log.ts');
  const { startApp } = await import('../app.ts');
  const config = loadConfig(process.env);
  const port = options.port === undefined ? undefined : Number(options.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new CliError(`--port: "${options.port}" is not a port number (0 to 65535)`, 2);
  }
  const log = createLogger(config.logLevel);
  let app;
  try {
    app = await startApp(config, log, port === undefined ? { roles } : { roles, port });
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error), 1);
  }
  if (app.port !== undefined) {
    // Bound to one address other than loopback, localhost would not answer: show that address.
    const shown = !app.host || ['0.0.0.0', '::', '127.0.0.1', '::1'].includes(app.host) ? 'localhost' : app.host.includes(':') ? `[${app.host}]` : app.host;
    process.stdout.write(
      app.sandbox
        ? `patchbay is running in sandbox mode (no Slack or Teams configured): open http://${shown}:${app.port}/ to see the engineers' channel, the clients' Teams chats and the users' DMs\n`
        : app.chat.mode === 'off'
          ? `patchbay is running with chat off (${app.chat.why}): http://${shown}:${app.port}/healthz\n`
          : `patchbay is running: http://${shown}:${app.port}/healthz\n`,
    );
  }
  await new Promise<void>((resolve) => {
    let stoppingSince: number | undefined;
    const shutdown = (signal: NodeJS.Signals) => {
      if (stoppingSince !== undefined) {
        // Ctrl-C under `npm start` arrives twice (from the terminal and forwarded by npm): ignore the echo. A
        // later one means now; the exit hook still stops the private Redis.
        if (Date.now() - stoppingSince < 2_000) return;
        log.warn({ signal }, 'signalled again while stopping: exiting now');
        process.exit(1);
      }
      stoppingSince = Date.now();
      log.info({ signal }, 'shutting down');
      const forced = setTimeout(() => {
        log.error('shutdown took longer than 30 s; exiting');
        process.exit(1);
      }, 30_000);
      forced.unref();
      void app.stop().finally(() => {
        clearTimeout(forced);
        log.info('stopped');
        resolve();
      });
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
  });
  // Everything that matters is closed and saved; what a library left waiting (a worker that gave up on a Redis
  // that went away) must not keep the process alive.
  process.exit(process.exitCode ?? 0);
}
