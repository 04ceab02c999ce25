// Package codec groups the record codecs shared by operators: jsondec decodes
// JSON objects straight into Arrow builders, jsonenc writes Arrow rows as JSON.
// The package itself is empty; import its subpackages.
package codec
