package main

// Embed the time-zone database so `time_zone` works on hosts without one
// (minimal containers): policies see hours and weekdays in that zone.
import _ "time/tzdata"
