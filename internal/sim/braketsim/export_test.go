package braketsim

func (e *Emulator) taskCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.tasks)
}

func (e *Emulator) history(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tasks[id]; ok {
		return append([]string(nil), t.history...)
	}
	return nil
}
