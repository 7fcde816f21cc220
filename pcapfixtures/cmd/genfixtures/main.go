// Command genfixtures regenerates pcapfixtures (go generate ./pcapfixtures).
package main

import (
	"flag"
	"log"

	"github.com/hilproject/hil/pcapfixtures/internal/generate"
)

func main() {
	out := flag.String("out", ".", "directory to write the fixtures and manifest.json into")
	flag.Parse()
	if err := generate.Write(*out); err != nil {
		log.Fatal(err)
	}
}
