/**
 * Number formatting shared by the panel's rows.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1536` -> `"1.5 KiB"`. */
export function formatBytes(n: number): string {
  let value = Math.max(0, n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** `0.123` -> `"12%"`; clamps to [0, 100] for the bar width, not for the label. */
export function formatPercent(fraction: number): string {
  return `${Math.round(Math.max(0, fraction) * 100)}%`;
}

/** A fraction in [0, 1] for a bar; 0 when the total is unknown. */
export function fraction(used: number, total: number | undefined): number {
  if (!total || total <= 0 || !Number.isFinite(used)) {
    return 0;
  }
  return Math.min(1, Math.max(0, used / total));
}
