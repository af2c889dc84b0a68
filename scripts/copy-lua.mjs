// tsc compiles only TypeScript; the Lua scripts are read at run time next to the
// compiled store module, so the build copies them beside it.
import { cpSync } from 'node:fs';
cpSync('src/store/lua', 'dist/store/lua', { recursive: true });
