export type * from './types.js';
export { loadConfig, ConfigError, ConfigFileError, type ConfigOverride, type LoadOptions } from './load.js';
export { describeOptions, type OptionDescription } from './describe.js';
export { parseDuration, parseSize, formatDuration, formatSize, UnitError } from './units.js';
export { parseHostPort, formatHostPort } from './address.js';
export { PROFILES, findProfile, type RegistryProfile } from './profiles.js';
