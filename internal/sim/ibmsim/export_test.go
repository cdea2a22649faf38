package ibmsim

func (e *Emulator) jobCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.jobs)
}

func (e *Emulator) history(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j, ok := e.jobs[id]; ok {
		return append([]string(nil), j.history...)
	}
	return nil
}

func (e *Emulator) tokenCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.tokens)
}
