//go:build tools

// Keeps github.com/magefile/mage in go.mod for the `go run mage.go`
// bootstrap, which `go mod tidy` cannot see behind its ignore tag.
package main

import _ "github.com/magefile/mage/mage"
