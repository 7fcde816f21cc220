package images_test

// The bundled-image tests run scenarios on the container target, a plug-in.
import _ "github.com/hilproject/hil/harness/target/container"
