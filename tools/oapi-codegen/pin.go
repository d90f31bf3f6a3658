// Package oapicodegen pins, away from vidgen's own go.mod, the oapi-codegen that `make check-openapi`
// runs (the tool directive in go.mod) and the runtime its generated client imports, so that the
// client is built against the versions it was generated for.
package oapicodegen

import _ "github.com/oapi-codegen/runtime"
