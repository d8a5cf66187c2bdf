"""nbgrader settings for this repository's layout (instructors run nbgrader from here)."""
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"   # nbgrader source: solutions + hidden tests
c.CourseDirectory.release_directory = "course"     # what students get, generated, committed
c.CourseDirectory.course_id = "transfer-learning"
