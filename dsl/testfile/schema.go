package testfile

// Schema returns the JSON Schema (draft 2020-12) of the list under a test
// file's (or a pipeline's) `tests:` key; FileSchema wraps it for a whole
// NAME.test.yaml. They mirror what Parse accepts.
func Schema() map[string]any {
	type obj = map[string]any
	row := obj{
		"type":        "object",
		"description": "a row: column name to value; $partition and $key are Kafka metadata for inputs",
		"properties": obj{
			"$partition": obj{"type": "integer", "minimum": 0},
			"$key":       obj{"type": "string"},
		},
	}
	rows := obj{"type": "array", "items": row}
	input := obj{"type": "object", "description": "rows per source", "additionalProperties": rows}
	step := obj{
		"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": false,
		"properties": obj{
			"input":   input,
			"advance": obj{"type": "string", "description": "move the simulated clock by a duration (30s, 1h)"},
			"watermark": obj{
				"type": "object", "description": "per source: no more rows with an event time before this (RFC 3339), for every partition fed so far or one partition",
				"additionalProperties": obj{"oneOf": []any{
					obj{"type": "string"},
					obj{
						"type": "object", "required": []string{"time"}, "additionalProperties": false,
						"properties": obj{"time": obj{"type": "string"}, "partition": obj{"type": "integer", "minimum": 0}},
					},
				}},
			},
		},
	}
	expect := obj{
		"type":        "object",
		"description": "rows per sink (dead-letter and late outputs are sinks)",
		"additionalProperties": obj{"oneOf": []any{
			rows,
			obj{
				"type": "object", "required": []string{"rows"}, "additionalProperties": false,
				"properties": obj{
					"rows":    rows,
					"ordered": obj{"type": "boolean", "default": false},
					"columns": obj{"type": "array", "items": obj{"type": "string"}},
				},
			},
		}},
	}
	test := obj{
		"type": "object", "required": []string{"name", "expect"}, "additionalProperties": false,
		"properties": obj{
			"name":   obj{"type": "string"},
			"at":     obj{"type": "string", "description": "the simulated clock's start, RFC 3339"},
			"input":  input,
			"steps":  obj{"type": "array", "items": step},
			"expect": expect,
		},
	}
	return obj{"type": "array", "description": "pipeline tests for `flowrun test`", "items": test}
}

// FileSchema is the JSON Schema of a NAME.test.yaml file.
func FileSchema() map[string]any {
	return map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  "https://flowrun.dev/schema/test.json",
		"title":                "flowrun pipeline tests",
		"type":                 "object",
		"required":             []string{"tests"},
		"additionalProperties": false,
		"properties": map[string]any{
			"pipeline": map[string]any{"type": "string", "description": "the pipeline tested, relative to this file (default: NAME.yaml)"},
			"vars":     map[string]any{"type": "object", "additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}}},
			"tests":    Schema(),
		},
	}
}
