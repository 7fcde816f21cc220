// Package activity lets the slow, first-time work deep inside a step say
// what it is doing (fetching Debian's kernel, building the guest init,
// flattening an image, building the boot image), so that progress shows
// it instead of an opaque "boot" that takes a minute. A caller that wants
// to hear puts a Func in the context (the scenario runner does, and turns
// each report into a progress event); code that does the work calls
// Report, which does nothing when nobody listens.
package activity

import (
	"context"
	"fmt"
)

// Func receives what is being done now, one short line ("fetching
// Debian's kernel linux-image-6.1.0-41-armmp (armhf) through apt").
type Func func(what string)

type key struct{}

// With returns ctx with f listening to Report.
func With(ctx context.Context, f Func) context.Context {
	return context.WithValue(ctx, key{}, f)
}

// Report tells whoever listens on ctx what is being done now.
func Report(ctx context.Context, format string, args ...any) {
	if f, ok := ctx.Value(key{}).(Func); ok && f != nil {
		f(fmt.Sprintf(format, args...))
	}
}
