package activity_test

import (
	"context"
	"testing"

	"github.com/hilproject/hil/harness/activity"
)

func TestReportReachesTheListener(t *testing.T) {
	var got []string
	ctx := activity.With(context.Background(), func(what string) { got = append(got, what) })
	activity.Report(ctx, "fetching %s", "the kernel")
	activity.Report(context.Background(), "nobody listens") // must not panic
	if len(got) != 1 || got[0] != "fetching the kernel" {
		t.Errorf("heard %q, want [fetching the kernel]", got)
	}
}
