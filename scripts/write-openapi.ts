// npm run openapi: regenerates the committed OpenAPI document from the route schemas.
import { writeFileSync } from 'node:fs';
import { buildOpenApiDocument, formatDocument, OPENAPI_FILE } from '../src/openapi-document.js';

writeFileSync(OPENAPI_FILE, formatDocument(await buildOpenApiDocument()));
console.log(`wrote ${OPENAPI_FILE}`);
