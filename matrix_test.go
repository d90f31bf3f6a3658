//go:build !e2e

package main

// fullMatrix is false in the fast suite: the tables of renders run a sample of their cases (see
// sampled). The e2e build sets it, so make e2e renders every case.
const fullMatrix = false
