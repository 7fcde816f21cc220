# cosign verify-attestation --policy hil-pass.rego: the statement must be a
# hil test result with result PASSED, no failed test, and a passed test on
# the board "virt" (tests are scenario/target/board/platform). The same rule
# is the ClusterImagePolicy's (package sigstore, isCompliant there).
package signature

import rego.v1

default allow := false

allow if {
	input.predicateType == "https://in-toto.io/attestation/test-result/v0.1"
	input.predicate.result == "PASSED"
	count(object.get(input.predicate, "failedTests", [])) == 0
	some t in input.predicate.passedTests
	split(t, "/")[2] == "virt"
}
