"""The HEART console (``heart console``): a live, signed-in, role-scoped web board built
from the topics, for the 911 center's supervisors, care navigators and HEART teams."""
