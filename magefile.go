//go:build mage

// The Persona Vectors experiment as a build. Run `go run mage.go -l` for the
// targets; `go run mage.go results` runs everything that is stale.
package main

import (
	//mage:import
	_ "github.com/modelorganisms/pvbuild/targets"
)
