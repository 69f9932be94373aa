"""The Django admin in headless Chromium, on the live server: log in, create, edit, delete."""

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User

from aiodjango.testing import StaticAioLiveServerTestCase
from tests.compat.models import Author, Book
from tests.compat.support import chromium_page, fetch


class AdminTests(StaticAioLiveServerTestCase):
    def test_log_in_create_edit_and_delete_a_book(self):
        # Playwright's sync API runs an event loop in this thread: the ORM
        # is used before the browser starts and after it stops.
        User.objects.create_superuser("admin", "admin@example.com", "pw")
        Author.objects.create(name="Frank Herbert")
        url = self.live_server_url
        with chromium_page() as (page, errors):
            page.goto(url + "/admin/login/?next=/admin/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "pw")
            page.click("input[type=submit]")
            page.wait_for_url(url + "/admin/")

            page.goto(url + "/admin/compat/book/add/")
            page.fill("#id_title", "Dune")
            page.select_option("#id_author", label="Frank Herbert")
            page.click("input[name=_save]")
            page.wait_for_url(url + "/admin/compat/book/")
            page.locator(".messagelist .success", has_text="was added successfully").wait_for()

            page.click("#result_list a:text-is('Dune')")
            page.fill("#id_title", "Dune Messiah")
            page.click("input[name=_save]")
            page.wait_for_url(url + "/admin/compat/book/")
            page.locator(".messagelist .success", has_text="was changed successfully").wait_for()
            assert page.locator("#result_list a:text-is('Dune Messiah')").count() == 1

            page.click("#result_list a:text-is('Dune Messiah')")
            page.click("a.deletelink")
            page.click("input[type=submit]")  # "Yes, I'm sure"
            page.wait_for_url(url + "/admin/compat/book/")
            page.locator(".messagelist .success", has_text="was deleted successfully").wait_for()
            assert page.locator("#result_list").count() == 0

        self.assertEqual(errors, [])
        self.assertFalse(Book.objects.exists())
        history = list(LogEntry.objects.order_by("id").values_list("action_flag", "object_repr"))
        self.assertEqual(history, [(ADDITION, "Dune"), (CHANGE, "Dune Messiah"), (DELETION, "Dune Messiah")])

    def test_the_admin_refuses_a_post_without_its_csrf_token(self):
        User.objects.create_superuser("admin", "admin@example.com", "pw")
        r = fetch(
            self.live_server_url + "/admin/login/", method="POST",
            data=b"username=admin&password=pw",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self.assertEqual(r.status, 403)
        self.assertIn("CSRF", r.text)
