// Opens the store the configuration asks for: the driver TCPKV_STORE names, or the first whose own
// settings are given (drivers.ts). Every driver opens the same way; nothing here knows one store.

import type { Logger } from 'pino';
import { StartupError } from '../../common/errors.js';
import { ConfigError } from '../../common/settings.js';
import { StoreOpenError, type StoreDeps, type StoreDriver } from './driver.js';
import { chooseDriver } from './drivers.js';
import { defaultStoreLimits } from './memory-store.js';
import type { Store, StoreLimits } from './store.js';

type Config = { readonly store?: string | undefined; readonly maxKeys?: number | undefined; readonly maxDataBytes?: number | undefined; readonly [key: string]: unknown };

/**
 * The store limits (docs/store.md, Limits): the settings, or defaults derived from the heap this
 * process has (see defaultStoreLimits). openStore logs them, so an operator sees what applies.
 */
export function storeLimits(config: { readonly maxKeys?: number | undefined; readonly maxDataBytes?: number | undefined }): StoreLimits {
  const defaults = defaultStoreLimits();
  return { maxKeys: config.maxKeys ?? defaults.maxKeys, maxDataBytes: config.maxDataBytes ?? defaults.maxDataBytes };
}

/** A store loaded past its limits starts anyway, read-only for growth: say so clearly. */
export function warnIfOverLimits(store: Store, limits: StoreLimits, logger: Logger): void {
  const usage = store.usage();
  if (usage === undefined) return;
  const over = usage.keys > limits.maxKeys ? `TCPKV_MAX_KEYS=${limits.maxKeys}` : usage.dataBytes > limits.maxDataBytes ? `TCPKV_MAX_DATA_BYTES=${limits.maxDataBytes}` : undefined;
  if (over !== undefined) {
    logger.warn({ keys: usage.keys, dataBytes: usage.dataBytes, limit: over }, `the stored data is over ${over}: writes that grow the store answer 507 until keys are deleted or the limit is raised`);
  }
}

/** The checks between the chosen store's settings (config.ts runs them with the others). */
export function storeSettingsProblem(config: Config): string | undefined {
  const driver = chooseDriver(config);
  return driver.settingsProblem?.(config as never);
}

/**
 * Opens the store. A refusal to start is a StartupError: the driver's own (a setting, a damaged log, a
 * file in use), or a StoreOpenError saying where the store would have been.
 */
export async function openStore(config: Config, deps: StoreDeps): Promise<Store> {
  const { limits, logger } = deps;
  logger.info({ maxKeys: limits.maxKeys, maxDataBytes: limits.maxDataBytes, derivedFromHeap: config.maxKeys === undefined || config.maxDataBytes === undefined }, 'store limits');
  const driver: StoreDriver = chooseDriver(config);
  const problem = driver.settingsProblem?.(config as never);
  if (problem !== undefined) throw new ConfigError(problem, 'TCPKV_STORE');
  let store: Store;
  try {
    store = await driver.open(config as never, deps);
  } catch (error) {
    if (error instanceof StartupError) throw error;
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'EEXIST' || e.code === 'ENOTDIR' ? 'it is not a directory' : (e.message ?? String(error));
    throw new StoreOpenError(`cannot open the store ${driver.location?.(config as never) ?? `(TCPKV_STORE=${driver.name})`}: ${why}`, undefined, { cause: error });
  }
  warnIfOverLimits(store, deps.limits, deps.logger);
  return store;
}
