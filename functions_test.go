package patterns

// isScriptCall reports whether a command (by its lower-case name) runs one
// of the package's scripts: EVAL, EVALSHA, FCALL and their _RO forms.
func isScriptCall(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}
