"""Care Navigation: durable 48-hour follow-up cases, released in staffed hours."""
