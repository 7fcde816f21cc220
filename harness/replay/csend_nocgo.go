//go:build !cgo || !linux

package replay

import "context"

const haveCSend = false

type cSender struct{}

func newCSender(context.Context) *cSender { panic("replay: no cgo") }
func (*cSender) sent() int64              { return 0 }
func (*cSender) send(int, []byte, []int64, []int64, []int64, int64) (int, error) {
	panic("replay: no cgo")
}
func (*cSender) close() {}
