// Package lint holds the repository's structural rules as tests: which
// packages may import which (dsl ← runtime ← operators ← cmd), and where
// client libraries such as sarama may appear.
package lint
