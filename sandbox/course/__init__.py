"""The course: the slides and their coverage (:mod:`~sandbox.course.slides`), the labs with their
checks (:mod:`~sandbox.course.labs`), notebook demos (:mod:`~sandbox.course.cnm_demo`), and
``sandbox reset`` (:mod:`~sandbox.course.reset`), which removes what the kit made.
"""
