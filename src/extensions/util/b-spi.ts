// SPI ranges of esp and ah: `N` or `N:M`, printed only when not the full range.
import type { OptionUse } from '../types';
import { rangeArg } from './b-opts';

export interface SpiRange {
  min: number;
  max: number;
  invert: boolean;
}

export const ALL_SPIS: SpiRange = { min: 0, max: 0xffffffff, invert: false };

export function parseSpis(use: OptionUse, ext: string): SpiRange {
  const [min, max] = rangeArg(use, 0xffffffff, ext);
  return { min, max, invert: use.negated };
}

export function formatSpis(name: string, s: SpiRange): string[] {
  if (s.min === 0 && s.max === 0xffffffff) return [];
  return [...(s.invert ? ['!'] : []), `--${name}`, s.min === s.max ? String(s.min) : `${s.min}:${s.max}`];
}

/** spi_match: `(min <= spi && spi <= max) ^ invert`. */
export function spiMatch(s: SpiRange, spi: number): boolean {
  return (s.min <= spi && spi <= s.max) !== s.invert;
}
