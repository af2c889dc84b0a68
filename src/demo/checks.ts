// The demo checks its own story: each act states what must have happened, and a StoryError
// names what did not, so `npm run demo` fails loudly instead of printing a wrong story.
export class StoryError extends Error {
  override name = 'StoryError';
}

export function check(condition: unknown, whatWentWrong: () => string): asserts condition {
  if (!condition) throw new StoryError(whatWentWrong());
}
