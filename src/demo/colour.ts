// Colour for a person at a terminal only: a pipe or a file (the test, a CI log) gets plain
// text, and NO_COLOR (https://no-color.org: set and not empty) turns it off anywhere. The
// demo's one environment read; the service's configuration lives in config.ts.
export type Tone = 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'blue' | 'magenta' | 'cyan';

const CODES: Record<Tone, [open: number, close: number]> = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  magenta: [35, 39],
  cyan: [36, 39],
};

export const colourful = process.stdout.isTTY === true && !process.env.NO_COLOR;

export function paint(text: string, ...tones: Tone[]): string {
  if (!colourful) return text;
  return tones.reduce((painted, tone) => `\x1b[${CODES[tone][0]}m${painted}\x1b[${CODES[tone][1]}m`, text);
}
