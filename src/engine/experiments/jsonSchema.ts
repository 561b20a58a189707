/** The JSON Schema type, apart from the schemas (schema.ts, trainSchema.ts) that use it. */

/** A JSON Schema (the draft-07 subset the validator understands). */
export interface Schema {
  $schema?: string;
  $id?: string;
  title?: string;
  description?: string;
  markdownDescription?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  enum?: readonly (string | number | boolean)[];
  const?: string | number | boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  pattern?: string;
  oneOf?: Schema[];
  anyOf?: Schema[];
  default?: unknown;
  examples?: unknown[];
  definitions?: Record<string, Schema>;
  $ref?: string;
  /** Draft-07 conditionals, for editors only: parse.ts picks the experiment kind itself. */
  if?: Schema;
  then?: Schema;
  else?: Schema;
}
