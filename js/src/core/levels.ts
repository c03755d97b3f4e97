/** The four levels, as levels.py has them. */
import { strip } from './text';

export const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR'] as const;
export type LevelName = (typeof LEVELS)[number];
export const LEVEL_VALUES: Record<string, number> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };
const ALIASES: Record<string, LevelName> = { WARN: 'WARNING', CRITICAL: 'ERROR', FATAL: 'ERROR' };

/** The level a name (any case) means; throws naming the accepted levels otherwise (levels.parse_level). */
export function parseLevel(value: string): LevelName {
  const name = strip(value).toUpperCase();
  if (name in LEVEL_VALUES) return name as LevelName;
  if (name in ALIASES) return ALIASES[name];
  throw new Error(`unknown log level '${value}': expected one of ${LEVELS.join(', ')} (any case)`);
}
