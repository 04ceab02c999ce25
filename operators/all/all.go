// Package all imports every built-in operator so that its init function
// registers it. Adding an operator is one folder plus one line here.
package all

import ()
