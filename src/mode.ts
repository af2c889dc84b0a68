// The two modes a resource is held in. The store's records, the HTTP layer's lease view and
// the metrics' labels all speak of them, so the type lives here, below every layer: src/http/
// may import no feature folder, so it could not live in src/store/. The HTTP schema of a mode
// (http/schemas/paths.ts) describes the same two values; test/modes.test.ts holds them equal.
export type Mode = 'exclusive' | 'shared';
