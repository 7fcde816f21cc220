module example.com/pcapwatch-hil

go 1.26.0

require (
	github.com/hilproject/hil v0.0.0
	github.com/onsi/ginkgo/v2 v2.34.0
	github.com/onsi/gomega v1.44.0
)

// A team's own module requires a hil release; this example uses the
// checkout it sits in.
replace github.com/hilproject/hil => ../..
