/* Shared scaffolding for the Check unit-test suites. */
#ifndef IBC_CHECK_H
#define IBC_CHECK_H

#include <stdlib.h>

#include <check.h>

/* Run one suite built by make_suite() and exit with its verdict. */
#define IBC_CHECK_MAIN(make_suite)                                             \
  int main (void)                                                              \
  {                                                                            \
    SRunner *sr = srunner_create (make_suite ());                              \
    srunner_run_all (sr, CK_NORMAL);                                           \
    int failed = srunner_ntests_failed (sr);                                   \
    srunner_free (sr);                                                         \
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                          \
  }

#endif
